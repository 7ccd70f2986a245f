"""Sum a list of numbers.

Parameters arrive as one JSON object on stdin; a JSON object printed on stdout becomes the
execution's result (its keys merged at the top level).
"""

import json
import sys


def main() -> int:
    params = json.load(sys.stdin)
    numbers = params.get("numbers", [])
    bad = [n for n in numbers if isinstance(n, bool) or not isinstance(n, (int, float))]
    if bad:
        print(f"numbers must all be numbers, got {bad!r}", file=sys.stderr)
        return 2
    json.dump({"sum": sum(numbers), "count": len(numbers)}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
