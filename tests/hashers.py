"""A password hasher for the test process only.

Django's PBKDF2 runs 1,000,000 iterations (about half a second of CPU here) for every user a
fixture makes and every ``client.login``: over a thousand tests, that was most of the suite's
per-test time. This hasher writes the same ``pbkdf2_sha256`` format with one iteration, so a
hash made in a test still verifies in a child process (worker, web server) running the real
settings, which read the iteration count from the hash.
"""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class OneIterationPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1
