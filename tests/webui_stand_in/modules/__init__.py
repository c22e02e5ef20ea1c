"""A minimal stand-in for the WebUI's `modules` package, with A1111 1.10's signatures, so the
adapter can be unit-tested in CI. Integration tests run against the real WebUI instead
(tests/test_webui_real.py, with SD_WEBUI_DIR set)."""
