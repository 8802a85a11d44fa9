import os
import sys

import pytest

SCRIPTS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_SESSION_TOKEN", None)
for _v in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_v, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

from standins.harness import running  # noqa: E402


@pytest.fixture
def moto():
    with running("moto") as info:
        yield info


def client(service, url, **kw):
    import boto3
    from botocore.config import Config
    kw.setdefault("aws_access_key_id", "testing")
    kw.setdefault("aws_secret_access_key", "testing")
    kw.setdefault("region_name", "us-east-1")
    cfg = kw.pop("config", None) or Config(retries={"total_max_attempts": 1, "mode": "standard"},
                                           connect_timeout=5, read_timeout=30)
    return boto3.client(service, endpoint_url=url, config=cfg, **kw)
