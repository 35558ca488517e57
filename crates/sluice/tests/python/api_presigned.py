"""Presigned URLs made by botocore's presigner (`generate_presigned_url` on the pipes client),
fetched with plain urllib: ListPipes answers 200, DescribePipe of a missing pipe 404."""

import json
import os
import urllib.error
import urllib.request

import boto3

client = boto3.client(
    "pipes",
    region_name="us-east-1",
    endpoint_url=os.environ["SLUICE_URL"],
)


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers.get("x-amzn-errortype"), json.load(resp)
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("x-amzn-errortype"), json.load(e)


status, _, body = fetch(client.generate_presigned_url("list_pipes", Params={"Limit": 5}, ExpiresIn=60))
assert "Pipes" in body, body
print("list", status)
url = client.generate_presigned_url("describe_pipe", Params={"Name": "nope"}, ExpiresIn=60)
status, kind, body = fetch(url)
print("describe", status, kind)
