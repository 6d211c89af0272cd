"""junit.xml: one testsuite "stress", one testcase per scenario, for CI test-result viewers.

A failed threshold is a <failure>; a timeout, crash or interruption is an <error>, so viewers
tell a slow system from a broken run. Each testcase's <system-out> is its seed text block.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from stress.report.text import format_block, format_failure_lines
from stress.results import NOT_RUN_MESSAGE, UNFINISHED_STATUSES, Result

# Characters XML 1.0 cannot carry at all (terminal escapes in a log, for instance).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _testcase(result: Result) -> ET.Element:
    case = ET.Element("testcase", {
        "classname": "stress",
        "name": xml_text(result.scenario.name),
        "time": f"{max(result.metrics.duration_s, 0.0):.3f}",
    })
    if result.status == "not_run":
        ET.SubElement(case, "skipped", {"message": NOT_RUN_MESSAGE})
    elif not result.passed:
        tag = "error" if result.status in UNFINISHED_STATUSES else "failure"
        messages = [f.message for f in result.failures] or [f"scenario ended as {result.status}"]
        kinds: list[str] = sorted({f.kind for f in result.failures}) or [result.status]
        problem = ET.SubElement(case, tag, {"message": xml_text("; ".join(messages)),
                                            "type": ",".join(kinds)})
        body: list[str] = []
        for failure in result.failures:
            body += [*format_failure_lines(failure), ""]
        problem.text = xml_text("\n".join(body).strip() or messages[0])
    out = ET.SubElement(case, "system-out")
    out.text = xml_text(format_block(result))
    return case


def render_junit(results: list[Result]) -> str:
    failures = sum(1 for r in results if not r.passed and r.status not in UNFINISHED_STATUSES)
    skipped = sum(1 for r in results if r.status == "not_run")
    errors = sum(1 for r in results if r.status in UNFINISHED_STATUSES) - skipped
    suite = ET.Element("testsuite", {
        "name": "stress",
        "tests": str(len(results)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": f"{sum(max(r.metrics.duration_s, 0.0) for r in results):.3f}",
    })
    environment = next((r.environment for r in results if r.environment), None)
    if environment is not None:
        properties = ET.SubElement(suite, "properties")
        for key, value in vars(environment).items():
            ET.SubElement(properties, "property", {"name": key, "value": xml_text(str(value))})
    suite.extend(_testcase(result) for result in results)
    root = ET.Element("testsuites", {"name": "stress", "tests": suite.get("tests", "0"),
                                     "failures": str(failures), "errors": str(errors)})
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"
