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


class HealthTests(unittest.TestCase):
    def test_reports_the_release_and_its_environment(self):
        answer = server.health()
        self.assertEqual(answer["status"], "ok")
        self.assertEqual(answer["version"], server.VERSION)
        self.assertIn("environment", answer)


if __name__ == "__main__":
    unittest.main()
