"""Unit tests of the demo application (they write a JUnit report: tests/run)."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "app"))
import server  # noqa: E402


class SettingsTests(unittest.TestCase):
    def test_reads_key_value_lines(self):
        with tempfile.NamedTemporaryFile("w", delete=False) as handle:
            handle.write("ENVIRONMENT=test\n# comment\nLOG_LEVEL=debug\n")
        self.assertEqual(server.settings(handle.name), {"ENVIRONMENT": "test", "LOG_LEVEL": "debug"})

    def test_missing_file_is_no_settings(self):
        self.assertEqual(server.settings("/nonexistent/demo/env"), {})


if __name__ == "__main__":
    unittest.main()
