import pytest
from pydantic import ValidationError

from assistant import Assistant


def test_overrides_are_validated_like_the_environment(settings):
    assert settings.with_overrides(k=3).k == 3 and settings.k == 5
    for bad in ({"k": 0}, {"llm": "bogus"}, {"reader": "/nowhere"}, {"no_such_setting": 1}):
        with pytest.raises(ValidationError):
            settings.with_overrides(**bad)


def test_overrides_do_not_read_the_environment_again(settings, monkeypatch):
    monkeypatch.setenv("ASSISTANT_K", "9")
    assert settings.with_overrides(max_quotes=1).k == settings.k


def test_assistant_overrides_are_validated(settings):
    with pytest.raises(ValidationError):
        Assistant(settings, auto_index=False, k=0)
