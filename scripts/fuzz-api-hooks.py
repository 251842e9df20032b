"""Schemathesis hooks of scripts/fuzz-api.sh: the findings that are not defects, each dropped
as narrowly as it can be told apart, with the reason. Everything else fails the run."""

import re

import schemathesis
from hypothesis.internal import lambda_sources as _lambda_sources

# package content (PUT .../package_content) is a zip: sent as the bytes generated for it
schemathesis.serializer.alias("application/zip", "application/octet-stream")

# Hypothesis describes each filter's lambda by parsing its source with ast.parse; deep in the
# generator's recursion CPython 3.11 can fail that parse with "SystemError: AST constructor
# recursion depth mismatch" (a CPython bug), which schemathesis reports as a runtime error
# of the operation being generated. The description is only a label: such a lambda gets
# Hypothesis' own label for one it cannot read.
def _describe_lambda_or_unknown(describe):
    def describe_or_unknown(f, *args, **kwargs):
        try:
            return describe(f, *args, **kwargs)
        except SystemError:
            return "lambda: <unknown>"

    return describe_or_unknown


_lambda_sources._lambda_description = _describe_lambda_or_unknown(
    _lambda_sources._lambda_description
)

# ETSI GS MEC 009 attribute selectors (NFV-SOL 013 clause 5.3): all_fields, fields,
# exclude_fields and exclude_default exclude each other (fields may accompany exclude_default).
SELECTORS = ("all_fields", "fields", "exclude_fields", "exclude_default")

ETSI_CONDITIONS = (
    "exactly one of uris, fqdn, addresses or alternative shall be present",
    "one of transportId or transportInfo shall be present",
    "endpoint shall be present when isInsByMec is FALSE",
    # MEC 011 AppInfo: isInsByMec TRUE says MEC management instantiated the application, whose
    # AppInfo it then provisions; an application registering itself cannot claim it
    "an application registering itself was not instantiated by MEC management",
    "action needs a dstInterface",
    # MEC 011 DnsRule: the address is of the ipAddressType given
    "does not match ipAddressType",
    # MEC 010-2 LocationConstraints
    "countryCode is required when area is absent",
    # NFV-SOL 004 checksums: the hash's length follows from the algorithm ("a SHA-256
    # checksum is 64 hex digits")
    " hex digits",
)


# the request-body check's words for an integer written with a fraction (198.0)
WHOLE_FLOAT = re.compile(r'^/[^:]*: -?[0-9]+\.0 is not of types? "integer"')
SCHEMA_PROBLEMS = "the request body does not conform to the API's schema: "


def _only_whole_floats(detail):
    """True if every problem the request-body check lists is an integer written with a fraction."""
    if not detail.startswith(SCHEMA_PROBLEMS):
        return False
    problems = detail[len(SCHEMA_PROBLEMS):].split("; /")
    problems = [problems[0]] + ["/" + p for p in problems[1:]]
    return all(WHOLE_FLOAT.match(p) for p in problems)


def _path_parameter_invalid(case):
    values = case.path_parameters or {}
    return any(
        p.name in values and not p.is_valid(values[p.name]) for p in case.operation.path_parameters
    )


def _detail(response):
    try:
        body = response.json()
    except Exception:  # not JSON: not one of the problems below
        return ""
    return body.get("detail", "") if isinstance(body, dict) else ""


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """False if the failure is one of the known non-defects below (it is then not reported)."""
    query = case.query or {}
    if failure.code == "ST202" and response.status_code == 400:
        detail = _detail(response)
        # A stateful step whose path parameter came from an earlier response (a link: e.g. an
        # appPkgInfoId echoed in a subscription's filter) and is not valid for the parameter:
        # the fuzzer itself sent a request outside the document.
        if _path_parameter_invalid(case):
            return False
        # Constraints between parameters that OpenAPI 3.1 cannot state, each answered with a
        # 400 the specification asks for: exclusive selectors (MEC 009), exclusive service
        # query parameters (MEC 011 clause 8.2.3.3.1: ser_instance_id, ser_name and
        # ser_category_id), and an identifier in the body that differs from the path's.
        if "are mutually exclusive" in detail or "differs from the path" in detail:
            return False
        # Conditions ETSI states in its data models' text, not in its schemas (nor, so, in
        # ours): MEC 011 EndPointInfo has exactly one member, ServiceInfo a transportId or a
        # transportInfo, AppInfo an endpoint when isInsByMec is FALSE, a forwarding
        # TrafficRule a dstInterface; a self-registration no isInsByMec TRUE; and the
        # checksum's length its algorithm's.
        if any(phrase in detail for phrase in ETSI_CONDITIONS):
            return False
        # JSON Schema counts 198.0 as an integer; like most JSON APIs the services take
        # integers written without a fraction (serde: "invalid type: floating point"; the
        # request-body check: '198.0 is not of type "integer"').
        if "invalid type: floating point" in detail or _only_whole_floats(detail):
            return False
        # A GeoJSON Polygon's rings are closed (RFC 7946 3.1.6: the last position is the first)
        # and, given as text, the text is a Polygon's JSON (ETSI types area as a string): rules
        # a schema cannot state.
        if re.search(r"\barea: (ring [0-9]+ is not closed|not a GeoJSON Polygon|at most [0-9]+ positions)", detail):
            return False
        # Ids unique within their list (a configuration's rule ids, a client's credential ids):
        # JSON Schema's uniqueItems compares whole items, not one member of them.
        if re.search(r"duplicate (trafficRuleId|dnsRuleId|osContainerDescId|swImageDescriptor id) |credentialId .* is repeated", detail):
            return False
        # A port range's ends in order ("2000-1000" is refused), which a pattern cannot state.
        if "is reversed: its first port is the lower" in detail:
            return False
        # A transportId names one of the platform's transports (GET .../transports), state
        # the fuzzer cannot know, as it cannot know the ids of existing resources (404).
        if detail.startswith("unknown transportId"):
            return False
        # The filter expression (MEC 009 clause 6.19, NFV-SOL 013 clause 5.2) is a grammar over
        # the resource's attribute names, which a JSON Schema string cannot state.
        if detail.startswith("invalid filter: "):
            return False
        # Package content: a document can only say "bytes"; what is not a valid package is
        # refused with the reason (the onboarding pipeline has its own fuzz targets).
        if detail.startswith("package rejected: "):
            return False
        # A callback URI the document allows whose destination the outbound policy (the
        # service's configuration, [outbound] allow) refuses: the document cannot know it.
        if detail.endswith("names a destination the outbound policy does not allow"):
            return False
    if failure.code == "ST302" and response.status_code == 404:
        # A created instance's sub-resource that exists only from its instantiation on: its
        # Mp1 credential (GET .../credentials right after POST /app_instances is a 404 that
        # names the credential, not the instance).
        if re.match(r"Mp1 credential of application instance \S+ not found$", _detail(response)):
            return False
    if failure.code == "ST108" and case.method.upper() == "GET":
        # A list read with an attribute selector carries a partial representation, as MEC 009
        # clause 6.18 defines it: the attributes the selector removes (or exclude_default's,
        # which ETSI lists among the required ones, e.g. AppPkgInfo's checksum) are absent.
        if any(name in query for name in SELECTORS) and "is a required property" in failure.message:
            return False
    return True
