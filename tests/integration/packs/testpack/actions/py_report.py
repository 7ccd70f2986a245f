import json
import os
import sys

params = json.load(sys.stdin)
print(
    json.dumps(
        {
            "params": params,
            "execution_id": os.environ.get("ATTUNE_EXECUTION_ID"),
            "argv": sys.argv[1:],
            "traceparent": os.environ.get("ATTUNE_TRACEPARENT", ""),
        }
    )
)
