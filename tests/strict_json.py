"""JSON read as a strict reader (JavaScript, jq) would: NaN and Infinity are errors."""

import json
from pathlib import Path


def strict_json(path: Path):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)
