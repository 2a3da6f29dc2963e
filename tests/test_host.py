from django.core.management import call_command


def test_system_checks_pass():
    call_command("check", "--fail-level", "WARNING")


def test_unknown_setting_is_reported(settings):
    from metacore.checks import check_settings

    settings.METACORE = {"NOT_A_SETTING": 1}
    ids = [e.id for e in check_settings(None)]
    assert "metacore.E002" in ids
