"""Screenshots of on call on the site, for docs/oncall.md: the experts page at the api
service (the sample rotation in config/services.toml) and the board on a phone, with its
"Declare an incident" button.

    .venv/bin/python docs/make_oncall_screenshots.py   # -> docs/img/oncall-*.png

Needs headless Chromium (`apt-get install chromium`); reuses make_screenshots.py's
example incidents and sample configuration.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailbot.publish import publish_site  # noqa: E402
from mailbot.services import load_services  # noqa: E402

# Tuesday 29 December 2026: Dana's override of Yusuf's turn in the sample rotation.
NOW = dt.datetime(2026, 12, 29, 10, 0, tzinfo=dt.timezone.utc)


def _screens():
    spec = importlib.util.spec_from_file_location("make_screenshots",
                                                  REPO / "docs" / "make_screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=REPO / "test-artifacts" / "oncall-site")
    parser.add_argument("--img", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args(argv)
    screens = _screens()
    with tempfile.TemporaryDirectory() as tmp:
        config = screens.example_config(Path(tmp))
        publish_site(args.site, screens.example_incidents(NOW),
                     load_services(config.services_file), config, NOW)
    args.img.mkdir(parents=True, exist_ok=True)
    site = args.site.resolve()
    screens.screenshot((site / "experts.html").as_uri(),
                       args.img / "oncall-experts.png", "1280,1500")
    screens.screenshot((site / "index.html").as_uri(), args.img / "oncall-declare-phone.png",
                       "390,844")
    print(f"site: {site}\nscreenshots: {args.img}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
