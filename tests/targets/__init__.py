"""Targets on real libraries, and what their tests share."""

# The scenario the network targets' fault tests run: three streams, one made to fail, no loss
# allowed. ``{extra}`` takes more indented scenario keys (or nothing).
NETWORK_STREAM_SCENARIOS = """\
version: 1
scenarios:
  stream:
    title: Chat streams over the network
    messages: 2000
    conversations: 3
    error_rate: 0.34
    timeout_s: 30
{extra}    thresholds: {{max_loss_pct: 0}}
"""
