"""Put a teacher's training report inside its student's (key "teacher"), so that a distilled model's report
says how the look it imitates was learnt; or, with KEY "init", the report of the model a training started from
(`train-style --init`), so that the whole lineage ships with the model.

    python scripts/embed_teacher_report.py STUDENT.json TEACHER.json [KEY]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    student, teacher = Path(argv[0]), Path(argv[1])
    key = argv[2] if len(argv) == 3 else "teacher"
    report = json.loads(student.read_text())
    report[key] = json.loads(teacher.read_text())
    student.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{student}: embedded {teacher} as {key!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
