"""Drive a `sluice serve` with boto3 (botocore from PyPI): shapes, paging, and every error case
raising the botocore exception AWS would raise. Env: SLUICE_ENDPOINT (or several, comma-separated:
the instances of a cluster, which then get the requests in turn), AKID, SECRET.

Pipes here point at an unreachable broker and are created STOPPED (or stay STARTING), so no broker
is needed. Prints one line per check; exits non-zero on the first failure.
"""

import datetime
import itertools
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import boto3
import botocore.auth
import botocore.compat
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ENDPOINTS = os.environ["SLUICE_ENDPOINT"].split(",")
ENDPOINT = ENDPOINTS[0]
_turns = itertools.cycle(ENDPOINTS)
_sent = {e: 0 for e in ENDPOINTS}


def next_endpoint():
    e = next(_turns)
    _sent[e] += 1
    return e


def alternate(request, **_kwargs):
    """Send each request to the next instance (before signing, so the signature covers it)."""
    target = urllib.parse.urlsplit(next_endpoint())
    url = urllib.parse.urlsplit(request.url)
    request.url = urllib.parse.urlunsplit(url._replace(scheme=target.scheme, netloc=target.netloc))
AKID = os.environ["AKID"]
SECRET = os.environ["SECRET"]
ROLE = "arn:aws:iam::123456789012:role/sluice"
SOURCE = "smk://127.0.0.1:9"
TARGET = "http://127.0.0.1:9/in"


def client(secret=SECRET, akid=AKID):
    c = boto3.client(
        "pipes",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=akid,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    c.meta.events.register("before-sign.pipes.*", alternate)
    return c


pipes = client()


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok   {name}", flush=True)


def expect_error(name, exc_class, fn, **kwargs):
    try:
        fn(**kwargs)
    except exc_class as e:
        check(name, True)
        return e
    except Exception as e:  # noqa: BLE001 - report whatever it was
        check(name, False, f"expected {exc_class.__name__}, got {type(e).__name__}: {e}")
    check(name, False, f"expected {exc_class.__name__}, got success")


def kafka(topic="orders", **extra):
    params = {"TopicName": topic, "StartingPosition": "TRIM_HORIZON", "BatchSize": 10}
    params.update(extra)
    return {"SelfManagedKafkaParameters": params}


def create(*pos, **kwargs):
    name = pos[0] if pos else kwargs.pop("Name")
    args = dict(
        Name=name,
        Source=SOURCE,
        Target=TARGET,
        RoleArn=ROLE,
        DesiredState="STOPPED",
        SourceParameters=kafka(),
    )
    args.update(kwargs)
    return pipes.create_pipe(**args)


# -- create / describe ---------------------------------------------------------------------------
r = create(
    "b3-orders",
    Description="orders to http",
    SourceParameters={
        **kafka(ConsumerGroupID="b3-group"),
        "FilterCriteria": {"Filters": [{"Pattern": json.dumps({"value": {"kind": ["order"]}})}]},
    },
    TargetParameters={"InputTemplate": '{"id": <$.value.id>}'},
    Tags={"team": "payments"},
)
check("create answers CREATING", r["CurrentState"] == "CREATING", r)
check("create answers the ARN", r["Arn"] == "arn:aws:pipes:us-east-1:000000000000:pipe/b3-orders", r)
check("timestamps are datetimes", isinstance(r["CreationTime"], datetime.datetime), r)

d = pipes.describe_pipe(Name="b3-orders")
check("describe echoes the source parameters",
      d["SourceParameters"]["SelfManagedKafkaParameters"]["ConsumerGroupID"] == "b3-group", d)
check("describe echoes the template", d["TargetParameters"]["InputTemplate"] == '{"id": <$.value.id>}', d)
check("describe has the tags", d["Tags"] == {"team": "payments"}, d)
check("describe has RoleArn", d["RoleArn"] == ROLE, d)

# -- errors --------------------------------------------------------------------------------------
e = expect_error("bad name raises ValidationException", pipes.exceptions.ValidationException,
                 create, Name="bad name!")
check("bad name is in fieldList", e.response["fieldList"][0]["name"] == "Name", e.response)
check("bad name is HTTP 400", e.response["ResponseMetadata"]["HTTPStatusCode"] == 400)

e = expect_error(
    "bad pattern raises ValidationException", pipes.exceptions.ValidationException, create,
    Name="b3-bad-pattern",
    SourceParameters={**kafka(), "FilterCriteria": {"Filters": [{"Pattern": '{"value": {"n": [{"numeric": [">"]}]}}'}]}},
)
check("bad pattern names the pattern",
      e.response["fieldList"][0]["name"] == "SourceParameters.FilterCriteria.Filters[0].Pattern", e.response)

e = expect_error(
    "batch size out of range raises ValidationException", pipes.exceptions.ValidationException, create,
    Name="b3-bad-batch", SourceParameters=kafka(BatchSize=10001),
)
check("batch size names the field",
      e.response["fieldList"][0]["name"] == "SourceParameters.SelfManagedKafkaParameters.BatchSize", e.response)

e = expect_error("missing pipe raises NotFoundException", pipes.exceptions.NotFoundException,
                 pipes.describe_pipe, Name="b3-missing")
check("missing pipe is HTTP 404", e.response["ResponseMetadata"]["HTTPStatusCode"] == 404)
expect_error("stop of a missing pipe raises NotFoundException", pipes.exceptions.NotFoundException,
             pipes.stop_pipe, Name="b3-missing")

e = expect_error("duplicate create raises ConflictException", pipes.exceptions.ConflictException,
                 create, Name="b3-orders")
check("conflict names the resource", e.response.get("resourceId") == "b3-orders"
      and e.response.get("resourceType") == "pipe", e.response)

for label, c, code in [
    ("wrong secret key", client(secret="not-the-secret"), "InvalidSignatureException"),
    ("unknown access key", client(akid="AKIDUNKNOWN"), "UnrecognizedClientException"),
]:
    try:
        c.list_pipes()
        check(f"{label} is refused", False, "request succeeded")
    except ClientError as e:
        check(f"{label} is refused with 403 {code}",
              e.response["Error"]["Code"] == code
              and e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response)

try:
    urllib.request.urlopen(next_endpoint() + "/v1/pipes")
    check("unsigned request is refused", False, "request succeeded")
except urllib.error.HTTPError as e:
    check("unsigned request is refused with 403 UnrecognizedClientException",
          e.code == 403 and e.headers.get("X-Amzn-ErrorType") == "UnrecognizedClientException",
          (e.code, dict(e.headers)))

# A request signed 20 minutes ago.
real_now = botocore.compat.get_current_datetime
botocore.auth.get_current_datetime = lambda *a, **k: real_now(*a, **k) - datetime.timedelta(minutes=20)
try:
    pipes.list_pipes()
    check("stale request is refused", False, "request succeeded")
except ClientError as e:
    check("stale request is refused with 403 InvalidSignatureException",
          e.response["Error"]["Code"] == "InvalidSignatureException"
          and e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
          and "expired" in e.response["Error"]["Message"], e.response)
finally:
    botocore.auth.get_current_datetime = real_now


def signed(method, path, body=b"", query=""):
    """A raw request signed like botocore signs it (boto3 cannot send fields outside the model)."""
    url = next_endpoint() + path + (("?" + query) if query else "")
    req = AWSRequest(method=method, url=url, data=body,
                     headers={"Content-Type": "application/json"} if body else {})
    SigV4Auth(Credentials(AKID, SECRET), "pipes", "us-east-1").add_auth(req)
    p = req.prepare()
    r = urllib.request.Request(p.url, data=p.body or None, method=method, headers=dict(p.headers))
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, resp.headers, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")


# -- update --------------------------------------------------------------------------------------
r = pipes.update_pipe(Name="b3-orders", RoleArn=ROLE,
                      SourceParameters={"SelfManagedKafkaParameters": {"BatchSize": 50}})
check("update answers UPDATING", r["CurrentState"] == "UPDATING", r)
d = pipes.describe_pipe(Name="b3-orders")
k = d["SourceParameters"]["SelfManagedKafkaParameters"]
check("update changed the batch size and kept the topic",
      k["BatchSize"] == 50 and k["TopicName"] == "orders" and k["ConsumerGroupID"] == "b3-group", k)
check("update kept the filter", len(d["SourceParameters"]["FilterCriteria"]["Filters"]) == 1, d)

status, headers, body = signed(
    "PUT", "/v1/pipes/b3-orders",
    json.dumps({"RoleArn": ROLE, "SourceParameters": {"SelfManagedKafkaParameters": {"TopicName": "other"}}}).encode(),
)
check("an immutable field in an update is a 400 ValidationException",
      status == 400 and headers.get("X-Amzn-ErrorType") == "ValidationException"
      and body["fieldList"][0]["name"] == "SourceParameters.SelfManagedKafkaParameters.TopicName",
      (status, headers, body))
status, headers, body = signed("PUT", "/v1/pipes/b3-orders",
                               json.dumps({"RoleArn": ROLE, "Source": "smk://elsewhere:9092"}).encode())
check("a new Source is a ValidationException",
      status == 400 and body["fieldList"][0]["name"] == "Source", (status, body))
e = expect_error("update of a missing pipe raises NotFoundException", pipes.exceptions.NotFoundException,
                 pipes.update_pipe, Name="b3-missing", RoleArn=ROLE)

# -- list and paging -----------------------------------------------------------------------------
for i in range(5):
    create(f"b3-page-{i}")
create("b3-other", Target="http://127.0.0.1:9/other")
names = [p["Name"] for p in pipes.list_pipes(NamePrefix="b3-page-")["Pipes"]]
check("NamePrefix filters", names == [f"b3-page-{i}" for i in range(5)], names)
first = pipes.list_pipes(NamePrefix="b3-page-", Limit=2)
check("Limit cuts the page and gives a NextToken", len(first["Pipes"]) == 2 and "NextToken" in first, first)
second = pipes.list_pipes(NamePrefix="b3-page-", Limit=2, NextToken=first["NextToken"])
check("NextToken continues after the first page",
      [p["Name"] for p in second["Pipes"]] == ["b3-page-2", "b3-page-3"], second)
all_names = []
for page in pipes.get_paginator("list_pipes").paginate(NamePrefix="b3-", PaginationConfig={"PageSize": 3}):
    all_names += [p["Name"] for p in page["Pipes"]]
check("the paginator sees every pipe once", all_names == sorted(set(all_names)) and len(all_names) == 7, all_names)
other = pipes.list_pipes(TargetPrefix="http://127.0.0.1:9/other")["Pipes"]
check("TargetPrefix filters", [p["Name"] for p in other] == ["b3-other"], other)
check("list items carry Source and Target", other[0]["Source"] == SOURCE and other[0]["Target"].endswith("/other"), other)
check("SourcePrefix filters", len(pipes.list_pipes(SourcePrefix="smk://127.0.0.1:9", NamePrefix="b3-")["Pipes"]) == 7)
check("DesiredState filters", pipes.list_pipes(DesiredState="RUNNING", NamePrefix="b3-")["Pipes"] == [])
expect_error("a bad NextToken raises ValidationException", pipes.exceptions.ValidationException,
             pipes.list_pipes, NextToken="not-a-token")

# -- tags ----------------------------------------------------------------------------------------
arn = pipes.describe_pipe(Name="b3-other")["Arn"]
pipes.tag_resource(resourceArn=arn, tags={"env": "test", "sluice:HttpDelivery": "BATCH"})
check("tags are listed", pipes.list_tags_for_resource(resourceArn=arn)["tags"]
      == {"env": "test", "sluice:HttpDelivery": "BATCH"})
e = expect_error("an unknown sluice: tag raises ValidationException", pipes.exceptions.ValidationException,
                 pipes.tag_resource, resourceArn=arn, tags={"sluice:Nope": "1"})
e = expect_error("a bad sluice: value raises ValidationException", pipes.exceptions.ValidationException,
                 pipes.tag_resource, resourceArn=arn, tags={"sluice:HttpDelivery": "SOMETIMES"})
pipes.untag_resource(resourceArn=arn, tagKeys=["env", "sluice:HttpDelivery"])
check("untag removes tags", pipes.list_tags_for_resource(resourceArn=arn)["tags"] == {})
expect_error("tags of a missing pipe raise NotFoundException", pipes.exceptions.NotFoundException,
             pipes.list_tags_for_resource, resourceArn=arn.replace("b3-other", "b3-missing"))

# -- start / stop / delete -----------------------------------------------------------------------
r = pipes.start_pipe(Name="b3-page-0")
check("start answers STARTING", r["CurrentState"] == "STARTING" and r["DesiredState"] == "RUNNING", r)
r = pipes.stop_pipe(Name="b3-page-0")
check("stop answers STOPPING", r["CurrentState"] == "STOPPING" and r["DesiredState"] == "STOPPED", r)
r = pipes.delete_pipe(Name="b3-page-1")
check("delete answers DELETING", r["CurrentState"] == "DELETING" and r["DesiredState"] == "DELETED", r)

if len(ENDPOINTS) > 1:
    check("every instance answered requests", min(_sent.values()) > 10, _sent)
    print(f"alternating between {len(ENDPOINTS)} endpoints")
print("all boto3 checks passed")
