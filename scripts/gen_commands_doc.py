"""Write docs/commands.md from the commands' real --help texts.

    python scripts/gen_commands_doc.py           # rewrite docs/commands.md
    python scripts/gen_commands_doc.py --check   # exit 1 when it is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stripectl.cli.reference import build  # noqa: E402

TARGET = ROOT / "docs" / "commands.md"


def main() -> int:
    text = build()
    if "--check" in sys.argv[1:]:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python scripts/gen_commands_doc.py", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)} ({text.count('## `')} commands)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
