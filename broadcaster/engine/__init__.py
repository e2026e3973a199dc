"""The broadcast engine: state machine, runner (chunks -> SMPP pool -> outcomes), worker loop."""
