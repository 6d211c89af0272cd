"""The words of the seed's text block, written by report/text.py and read back by report/read.py.

Both sides use these constants, so a label renamed here is renamed in the writer and the parser
at once. The headlines of an unfinished run are the judge's; tests/test_report_read.py checks
that the judge still words them this way.
"""

from __future__ import annotations

from typing import Final, Literal

HEADER_PREFIX: Final = "=== Stress Test Results: "
HEADER_SUFFIX: Final = " ==="
CONFIGURATION: Final = "Configuration:"
RESULTS: Final = "Results:"
PASSED: Final = "✅ Test passed!"
FAILURE_PREFIX: Final = "FAILURE:"
DIAGNOSIS_PREFIX: Final = "Diagnosis:"
NOT_MEASURED: Final = "not measured"
# The first line of the runner's stress-test-<name>.log: "# scenario NAME (TITLE), ...".
LOG_HEADER_PREFIX: Final = "# scenario "

# Configuration lines.
MESSAGES: Final = "Messages"
MESSAGE_SIZE: Final = "Message size"
TOKEN_DELAY: Final = "Token delay"
CHANNEL_BUFFER: Final = "Channel buffer"
CONSUMER_DELAY: Final = "Consumer delay"
CONVERSATIONS: Final = "Conversations"
ERROR_RATE: Final = "Error rate"

# Results lines.
MESSAGES_SENT: Final = "Messages sent by backend"
TOKENS_BY_CONSUMER: Final = "Tokens received by consumer"
TOTAL_TOKENS: Final = "Total tokens received"
STREAMS_COMPLETED: Final = "Streams completed"
ERRORS: Final = "Errors"
DURATION: Final = "Duration"
THROUGHPUT: Final = "Throughput"
MEMORY_GROWTH: Final = "Memory growth"
QUIT_LATENCY: Final = "Quit latency"
MESSAGE_LOSS: Final = "Message loss"
LEAKED_AT_EXIT: Final = "Leaked at exit"
INSTRUCTIONS_PER_TOKEN: Final = "Instructions per token"

# The headline of each way a run can end unfinished (the judge's wording).
DEADLOCK_HEADLINE: Final = "FAILURE: Possible deadlock detected"
CRASH_HEADLINE: Final = "FAILURE: Scenario crashed"
INTERRUPTED_HEADLINE: Final = "FAILURE: Scenario interrupted"
UNFINISHED_HEADLINES: Final[dict[str, Literal["timeout", "crashed", "interrupted"]]] = {
    DEADLOCK_HEADLINE: "timeout",
    CRASH_HEADLINE: "crashed",
    INTERRUPTED_HEADLINE: "interrupted",
}


def header(title: str) -> str:
    return f"{HEADER_PREFIX}{title}{HEADER_SUFFIX}"


def field_line(label: str, value: str) -> str:
    """One indented "Label: value" line of the Configuration or Results part."""
    return f"  {label}: {value}"
