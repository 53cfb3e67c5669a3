import pytest
from django.core.management import call_command

from customfields.checks import collation_missing


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_postgresql_without_the_unicode_collation_is_named_at_start_up():
    assert collation_missing("default") is None
    error = collation_missing("default", '"xx-none-icu"')
    assert error is not None and error.id == "customfields.E001"
    assert '"xx-none-icu"' in error.msg


@pytest.mark.django_db
def test_the_database_checks_pass_here():
    call_command("check", "--database", "default")
