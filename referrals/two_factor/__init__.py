"""Two-factor login (TOTP, with django-otp) and what the admin needs of it.

Who needs a code: every staff user who is not a client user (account managers, superusers);
a client user when their client requires it, or when they turned it on themselves. The rule is
``services.second_step_needed``; ``middleware.TwoFactorMiddleware`` enforces it on every
request, and ``views`` holds the login steps and the user's own page. docs/SECURITY.md tells
the whole story, tokens and lockouts included.
"""
