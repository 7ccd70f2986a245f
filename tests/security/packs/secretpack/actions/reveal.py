import hashlib
import json
import os
import sys

params = json.load(sys.stdin)
password = params["password"]
print(f"the password is {password}", file=sys.stderr)
print(
    json.dumps(
        {
            "echo": password,
            "label": params["label"],
            "matches": hashlib.sha256(password.encode()).hexdigest() == params["expect_sha256"],
            "in_argv": any(password in arg for arg in sys.argv),
            "in_environment": any(password in value for value in os.environ.values()),
            "param_variable": "ATTUNE_PARAM_PASSWORD" in os.environ,
        }
    )
)
if params["fail"]:
    sys.exit(f"failed holding {password}")
