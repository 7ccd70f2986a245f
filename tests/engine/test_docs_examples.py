"""Every example in docs/workflows.md, run through the engine with the fixture driver.

An example is a ```yaml block holding a workflow document, followed (blank lines apart) by a
```yaml block whose first line is ``# what happens``: the driver's ``parameters``,
``outcomes``, ``cancel_at``, ``depth``, ``run_cap`` and ``expect`` (see driver.py), or
``expect: {refused: …}`` for a document that registration refuses. Blocks whose first line is
``# file: <path>`` are files of one example pack per section, loaded with the pack loader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from attune.packs import check_parameter_schema, load_pack_files, validate_parameters

from .driver import Simulation, check_expectations, check_refused

DOC = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"
SECTIONS = (
    "Packs and workflow files",
    "Parameters",
    "Top level",
    "Tasks",
    "Transitions",
    "Joins",
    "With items",
    "Retry, delay and timeout",
    "Expressions",
    "Functions",
    "Results",
    "Failure handling",
    "Engine commands",
    "Cancellation",
    "Pause and resume",
    "Approvals",
    "Re-running",
    "Nesting",
    "Semantic rules",
)
SECTIONS_WITHOUT_EXAMPLES = frozenset({"Packs and workflow files", "Parameters"})
HAPPENS = "# what happens"
FILE = re.compile(r"^# file: (\S+)$")
HAPPENS_KEYS = frozenset({"parameters", "outcomes", "cancel_at", "pause_at", "resume_at", "depth", "run_cap", "expect"})
EXPECT_KEYS = frozenset(
    {
        "sequence",
        "keys",
        "status",
        "result",
        "error_contains",
        "error",
        "timers",
        "inputs",
        "timeouts",
        "cancels",
        "max_in_flight",
        "finished_at",
        "vars",
        "refused",
    }
)
CORE_ACTIONS = ("core.ask", "core.echo", "core.local", "core.noop", "core.sleep")


@dataclass
class Block:
    """One fenced code block of the document."""

    section: str
    language: str
    text: str
    first_line: int  # 1-based line of the opening fence
    last_line: int  # 1-based line of the closing fence


@dataclass
class Example:
    """A workflow block and its ``# what happens`` block."""

    id: str
    workflow: str
    happens: dict[str, Any]


@dataclass
class Document:
    """What docs/workflows.md holds, and every way it breaks the example format."""

    sections: list[str] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    packs: dict[str, dict[str, bytes]] = field(default_factory=dict)  # section slug -> files
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def slug(heading: str) -> str:
    """The anchor a markdown renderer gives ``heading`` (``Retry, delay and timeout`` → ``retry-delay-and-timeout``)."""
    return re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")


def read_blocks(lines: list[str]) -> tuple[list[str], list[Block]]:
    """The H2 headings and the fenced blocks (fences at the start of a line) of the document."""
    sections: list[str] = []
    blocks: list[Block] = []
    open_at: int | None = None
    language = ""
    for number, line in enumerate(lines, start=1):
        if open_at is None and line.startswith("## "):
            sections.append(line[3:].strip())
        elif line.startswith("```"):
            if open_at is None:
                open_at, language = number, line[3:].strip()
            else:
                text = "\n".join(lines[open_at : number - 1]) + "\n"
                blocks.append(Block(sections[-1] if sections else "", language, text, open_at, number))
                open_at = None
    if open_at is not None:
        raise AssertionError(f"docs/workflows.md line {open_at}: code block never closed")
    return sections, blocks


def load_document(path: Path = DOC) -> Document:
    """Pair every workflow block with the ``# what happens`` block right after it."""
    doc = Document(lines=path.read_text(encoding="utf-8").splitlines())
    doc.sections, blocks = read_blocks(doc.lines)
    counts: dict[str, int] = {}
    pending: Block | None = None
    for block in blocks:
        if block.language != "yaml":
            continue
        first = block.text.split("\n", 1)[0].strip()
        if first == HAPPENS:
            if pending is not None and _adjacent(doc.lines, pending, block):
                counts[block.section] = counts.get(block.section, 0) + 1
                example_id = f"{slug(block.section)}-{counts[block.section]}"
                doc.examples.append(Example(example_id, pending.text, yaml.safe_load(block.text) or {}))
            else:
                if pending is not None:
                    doc.problems.append(_without_happens(pending))
                doc.problems.append(f"line {block.first_line}: a `{HAPPENS}` block with no workflow block just above")
            pending = None
            continue
        if pending is not None:
            doc.problems.append(_without_happens(pending))
        pending = None
        match = FILE.match(first)
        if match is not None:
            doc.packs.setdefault(slug(block.section), {})[match.group(1)] = block.text.encode("utf-8")
        else:
            pending = block
    if pending is not None:
        doc.problems.append(_without_happens(pending))
    return doc


def _without_happens(block: Block) -> str:
    return f"line {block.first_line}: workflow block without a `{HAPPENS}` block right after it"


def _adjacent(lines: list[str], above: Block, below: Block) -> bool:
    return all(not line.strip() for line in lines[above.last_line : below.first_line - 1])


def execution_parameters(workflow: str, given: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters the workflow starts with: what the example gives, checked and with the
    document's defaults applied, as the scheduler does before the engine sees them."""
    document = yaml.safe_load(workflow)
    raw_schema = document.get("parameters") if isinstance(document, dict) else None
    if raw_schema is None:
        return dict(given or {})
    schema, problems = check_parameter_schema(raw_schema)
    assert not problems, problems
    return validate_parameters(schema, given or {})


DOCUMENT = load_document()


def test_document_has_the_sections_in_order() -> None:
    assert DOCUMENT.sections == list(SECTIONS)


def test_every_workflow_block_has_what_happens() -> None:
    assert DOCUMENT.problems == []


@pytest.mark.parametrize("section", [s for s in SECTIONS if s not in SECTIONS_WITHOUT_EXAMPLES])
def test_section_has_an_example(section: str) -> None:
    assert any(e.id.startswith(slug(section) + "-") for e in DOCUMENT.examples), f"no example in {section!r}"


def test_semantic_rules_are_numbered_and_link_to_sections() -> None:
    start = DOCUMENT.lines.index("## Semantic rules")
    rules: list[str] = []
    for line in DOCUMENT.lines[start:]:
        if re.match(r"^\d+\. ", line):
            rules.append(line)
        elif rules and line.startswith("   ") and line.strip():
            rules[-1] += " " + line.strip()  # a rule continues on indented lines
    assert [int(rule.split(".", 1)[0]) for rule in rules] == list(range(1, 15))
    anchors = {slug(s) for s in SECTIONS}
    for rule in rules:
        links = re.findall(r"\]\(#([a-z0-9-]+)\)", rule)
        assert links, f"rule without a link to its section: {rule}"
        assert set(links) <= anchors, f"rule links to a missing section: {rule}"


@pytest.mark.parametrize("example", DOCUMENT.examples, ids=[e.id for e in DOCUMENT.examples])
def test_example_runs_as_documented(example: Example) -> None:
    happens = example.happens
    assert set(happens) <= HAPPENS_KEYS, f"unknown keys {set(happens) - HAPPENS_KEYS}"
    expect = happens.get("expect")
    assert isinstance(expect, dict) and expect, "an example must say what it expects"
    assert set(expect) <= EXPECT_KEYS, f"unknown expectations {set(expect) - EXPECT_KEYS}"
    source = f"workflows/{example.id}.workflow.yaml"
    if "refused" in expect:
        check_refused(expect, example.workflow, source)
        return
    fixture = {
        **happens,
        "workflow": example.workflow,
        "parameters": execution_parameters(example.workflow, happens.get("parameters")),
    }
    check_expectations(expect, Simulation(fixture, source).execute())


@pytest.mark.parametrize("section", sorted(DOCUMENT.packs))
def test_example_pack_is_accepted(section: str) -> None:
    bundle = load_pack_files(DOCUMENT.packs[section], known_action_refs=CORE_ACTIONS)
    assert bundle.actions, "the example pack declares no action"


def test_checks_catch_a_lonely_workflow_block(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("## Tasks\n\n```yaml\ntasks: []\n```\n\nprose\n\n```yaml\n# what happens\nexpect: {}\n```\n")
    problems = load_document(page).problems
    assert len(problems) == 2, problems
