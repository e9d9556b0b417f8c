"""Translate template.yaml from SAM to plain CloudFormation, as CloudFormation's SAM transform
does at deploy time, so that cfn-lint can lint the resources it actually creates.

    python infra/translate_template.py build/template.translated.json

Run by ``make lint``. The functions name their roles explicitly and no managed policy by name,
so the translator needs no IAM look-up (an empty managed policy map).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

PACKAGE_BUCKET = "bgtask-package-bucket"
# Without a feature toggle config (the SAM service's own), every DeploymentPreference warns that a
# feature is "not available"; the translation is the same, so keep the lint output quiet.
logging.getLogger("samtranslator.feature_toggle.feature_toggle").setLevel(logging.ERROR)
TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


def translate(template_path: Path = TEMPLATE) -> dict:
    """The CloudFormation template SAM makes of ``template_path``."""
    sam_template = yaml_parse(template_path.read_text())
    # As `sam package` does: local code folders become the S3 objects it uploads them to.
    globals_function = sam_template.get("Globals", {}).get("Function", {})
    if "CodeUri" in globals_function:
        globals_function["CodeUri"] = f"s3://{PACKAGE_BUCKET}/code.zip"
    for name, resource in sam_template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in properties:
            properties["CodeUri"] = f"s3://{PACKAGE_BUCKET}/{name}.zip"
    # The region only fills AWS::Region where SAM needs a value; nothing calls AWS.
    region = os.environ.get("AWS_REGION", "us-east-1")
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    return translator.translate(sam_template, parameter_values={}, get_managed_policy_map=dict)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    translated = translate()
    out = Path(argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(translated, indent=1) + "\n")
    print(f"{out}: {len(translated['Resources'])} resources")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
