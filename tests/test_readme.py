"""The README is the front door: every setting bgtask reads is documented there."""

import re
from pathlib import Path

from bgtask import conf

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_readme_settings_table():
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, flags=re.M))
    assert set(conf.DEFAULTS) <= documented, set(conf.DEFAULTS) - documented


def test_every_documented_setting_exists():
    documented = set(re.findall(r"^\| `((?:BGTASK_|MAX_)[A-Z_]+)` \|", README, flags=re.M))
    assert documented <= set(conf.DEFAULTS), documented - set(conf.DEFAULTS)


def test_documented_defaults_match_the_code():
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| `([^`]*)`", README, flags=re.M))
    for name, (default, _) in conf.DEFAULTS.items():
        assert rows[name].strip('"') == str(default), name
