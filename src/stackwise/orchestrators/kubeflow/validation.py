"""What Kubeflow Pipelines or Kubernetes would reject, found before anything is compiled.

Each check returns problems as sentences naming the step (or stack key) and the fix. The
grammars are the platforms' own:

- Quantities: Kubernetes' `resource.Quantity` grammar (k8s.io/apimachinery
  pkg/api/resource/quantity.go: a non-negative number, then `Ki|Mi|Gi|Ti|Pi|Ei`, `m|k|M|G|T|P|E`
  or an exponent), further narrowed by KFP 2.17's own setters (kfp/dsl/pipeline_task.py:
  cpu `([0-9]*[.])?[0-9]+m?`, memory an integer with an optional `E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki`):
  a value must pass both, so memory takes an integer and one of `Ei Pi Ti Gi Mi Ki E P T G M`.
- Accelerators: KFP's `set_accelerator_type` accepts any string, and KFP's Kubernetes driver
  puts it verbatim in the pod's resource limits (backend/src/v2/driver: `ResourceName(type)`),
  so the type must be an extended resource name (`nvidia.com/gpu`); a GPU model without `/`
  (`nvidia-tesla-t4`) selects nodes by the `kubeflow.gpu_label` node label instead. A count is
  a positive integer (KFP: non-negative; zero asks for nothing).
- Images: the Docker reference grammar (github.com/distribution/reference, reference.go).
- Names: DNS-1123 labels and subdomains, label keys (qualified names) and values, C identifiers
  for environment variables (Kubernetes apimachinery validation.go).
"""

from __future__ import annotations

import re
import typing
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stackwise.authoring.params import ParamSpec
    from stackwise.authoring.pipeline import Pipeline
    from stackwise.orchestrators.kubeflow.settings import KubeflowSettings

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
#: Kubernetes' quantity grammar (non-negative: a resource request cannot be negative).
K8S_QUANTITY = re.compile(
    rf"^\+?{_NUMBER}(?:Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
KFP_MEMORY = re.compile(r"^[0-9]+(?:E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$")
KFP_CPU = re.compile(r"^([0-9]*[.])?[0-9]+m?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
KFP_PIPELINE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[_.]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
#: A Docker image reference: [domain/]path[:tag][@digest].
IMAGE_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)

#: Task names stackwise uses itself in the compiled pipeline.
CLOSE_TASK = "stackwise-close-run"
RESERVED_TASKS = frozenset({CLOSE_TASK, "exit-handler-1"})


def k8s_name(name: str) -> str:
    """The name KFP gives a task or pipeline made from `name` (kfp.dsl.utils.maybe_rename_for_k8s:
    lower case, every run of other characters a single '-', no '-' at either end)."""
    return re.sub("-+", "-", re.sub("[^-0-9a-z]+", "-", name.lower())).strip("-")


def is_qualified_name(value: str) -> bool:
    """A label key or extended resource name: [DNS subdomain prefix '/'] name (63 max)."""
    prefix, sep, name = value.rpartition("/")
    if sep and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_NAME_PART.match(name))


def is_image_reference(value: str) -> bool:
    name = value.split("@", 1)[0].rsplit(":", 1)[0] if "/" in value else value
    return len(name) <= 255 and bool(IMAGE_REFERENCE.match(value))


def memory_problem(value: str) -> str | None:
    """Why `value` is not a memory quantity both Kubernetes and KFP accept (None: it is)."""
    if not K8S_QUANTITY.match(value) or not KFP_MEMORY.match(value) or value.endswith("K"):
        return (
            f"memory {value!r} is not a quantity Kubernetes and KFP both accept: write an "
            "integer with an optional suffix Ki, Mi, Gi, Ti, Pi, Ei (or k-free decimal M, G, "
            "T, P, E), e.g. '512Mi' or '4Gi'"
        )
    if int(re.sub(r"[A-Za-z]+$", "", value)) == 0:
        return f"memory {value!r} asks for nothing: give a positive amount such as '2Gi'"
    return None


def cpu_quantity(cpu: float) -> str:
    """`Resources.cpu` as a Kubernetes CPU quantity: whole cores as '2', else millicores."""
    if float(cpu).is_integer():
        return str(int(cpu))
    return f"{round(cpu * 1000)}m"


def cpu_problem(cpu: float) -> str | None:
    quantity = cpu_quantity(cpu)
    if quantity in ("0", "0m") or not KFP_CPU.match(quantity) or not K8S_QUANTITY.match(quantity):
        return (
            f"cpu {cpu!r} is not a CPU quantity Kubernetes accepts (the smallest is 0.001, one "
            "millicore): give cores such as cpu=0.5 or cpu=2"
        )
    return None


def accelerator(gpu_type: str | None, settings: KubeflowSettings) -> tuple[str, str | None]:
    """(KFP accelerator type = the extended resource name, node label value or None)."""
    if gpu_type is None:
        return settings.gpu_resource, None
    if "/" in gpu_type:
        return gpu_type, None
    return settings.gpu_resource, gpu_type


def step_problems(pipeline: Pipeline, settings: KubeflowSettings) -> list[str]:
    """Problems of each step: its task name, resources, accelerator, image, compute."""
    out: list[str] = []
    seen: dict[str, str] = {}
    for step in pipeline.order:
        options = pipeline.nodes[step].definition.options
        where = f"step {step!r}"
        name = k8s_name(step)
        if not name or len(name) > 63 or not DNS_LABEL.match(name):
            out.append(
                f"{where}: its Kubernetes task name {name!r} is not a DNS-1123 label (at most "
                "63 lower-case letters, digits or '-'): rename the step"
            )
        elif name in RESERVED_TASKS:
            out.append(f"{where}: the task name {name!r} is used by stackwise: rename the step")
        elif name in seen:
            out.append(
                f"{where} and step {seen[name]!r} both become task {name!r} in Kubeflow: rename "
                "one of them"
            )
        seen.setdefault(name, step)
        res = options.resources
        if res.cpu is not None and (problem := cpu_problem(res.cpu)):
            out.append(f"{where}: {problem}")
        if res.memory is not None and (problem := memory_problem(res.memory)):
            out.append(f"{where}: {problem}")
        out += [f"{where}: {p}" for p in _accelerator_problems(res.gpu, res.gpu_type, settings)]
        image = options.image or settings.image
        if image is None:
            out.append(
                f"{where}: no image: set kubeflow.image in the stack file to a base image "
                "holding stackwise and the pipeline's dependencies (`stackwise image "
                "dockerfile TARGET` writes its Dockerfile)"
            )
        elif not is_image_reference(image):
            out.append(
                f"{where}: image {image!r} is not a valid image reference "
                "([registry/]repository[:tag][@sha256:digest], lower-case repository)"
            )
        if options.compute not in (None, "local"):
            out.append(
                f"{where}: compute {options.compute!r} is not available on Kubeflow (every step "
                "runs in its own pod): drop compute= from the step"
            )
    return out


def _accelerator_problems(
    gpu: int | None, gpu_type: str | None, settings: KubeflowSettings
) -> list[str]:
    if gpu is None or gpu == 0:
        return []
    if isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0:
        return [f"gpu={gpu!r} is not a count KFP accepts: give a positive integer"]
    if gpu_type is None or "/" in gpu_type:
        resource = gpu_type or settings.gpu_resource
        if not is_qualified_name(resource) or resource.split("/")[0].endswith("kubernetes.io"):
            return [
                f"accelerator type {resource!r} is not an extended resource name Kubernetes "
                "accepts (vendor-domain/name, e.g. nvidia.com/gpu or amd.com/gpu)"
            ]
        return []
    if len(gpu_type) > 63 or not LABEL_VALUE.match(gpu_type):
        return [
            f"accelerator type {gpu_type!r} is neither an extended resource name (nvidia.com/gpu)"
            " nor a GPU model a node label can hold (at most 63 letters, digits, '-', '_', '.')"
        ]
    return []


def settings_problems(settings: KubeflowSettings) -> list[str]:
    """Problems of the stack's `kubeflow:` section."""
    out: list[str] = []
    if settings.namespace is not None and (
        len(settings.namespace) > 63 or not DNS_LABEL.match(settings.namespace)
    ):
        out.append(
            f"kubeflow.namespace {settings.namespace!r} is not a Kubernetes namespace name "
            "(DNS-1123 label: lower-case letters, digits, '-', at most 63)"
        )
    account = settings.service_account
    if account is not None and (len(account) > 253 or not DNS_SUBDOMAIN.match(account)):
        out.append(
            f"kubeflow.service_account {account!r} is not a service account name (DNS-1123 "
            "subdomain: lower-case letters, digits, '-', '.')"
        )
    for key, value in settings.node_selector.items():
        if not is_qualified_name(key) or len(value) > 63 or not LABEL_VALUE.match(value):
            out.append(
                f"kubeflow.node_selector {key!r}: {value!r} is not a Kubernetes label (key "
                "[prefix/]name, value at most 63 letters, digits, '-', '_', '.')"
            )
    for i, tol in enumerate(settings.tolerations):
        if tol.key is not None and not is_qualified_name(tol.key):
            out.append(f"kubeflow.tolerations[{i}].key {tol.key!r} is not a label key")
        if tol.operator == "Exists" and tol.value:
            out.append(f"kubeflow.tolerations[{i}]: operator Exists takes no value; drop it")
    for env, ref in settings.secrets.items():
        if not ENV_NAME.match(env):
            out.append(
                f"kubeflow.secrets {env!r} is not an environment variable name (letters, "
                "digits, '_', not starting with a digit)"
            )
        if len(ref.secret) > 253 or not DNS_SUBDOMAIN.match(ref.secret):
            out.append(f"kubeflow.secrets.{env}.secret {ref.secret!r} is not a secret name")
        if not SECRET_KEY.match(ref.key):
            out.append(f"kubeflow.secrets.{env}.key {ref.key!r} is not a secret key")
    if settings.token_env is not None and not ENV_NAME.match(settings.token_env):
        out.append(
            f"kubeflow.token_env {settings.token_env!r} must be the NAME of an environment "
            "variable holding the token (never the token itself)"
        )
    if settings.image is not None and not is_image_reference(settings.image):
        out.append(f"kubeflow.image {settings.image!r} is not a valid image reference")
    if not is_qualified_name(settings.gpu_label):
        out.append(f"kubeflow.gpu_label {settings.gpu_label!r} is not a label key")
    return out


def kfp_type(spec: ParamSpec) -> tuple[type | None, bool]:
    """The KFP parameter type of a pipeline parameter and whether it may be left out (None:
    KFP cannot type it). Literal choices take their common scalar type; `X | None` is X."""
    import types

    ann = spec.annotation
    optional = False
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        optional = len(args) < len(typing.get_args(ann))
        if len(args) != 1:
            return None, optional
        ann = args[0]
    if typing.get_origin(ann) is typing.Literal:
        kinds = {type(a) for a in typing.get_args(ann)}
        ann = kinds.pop() if len(kinds) == 1 else None
    container = typing.get_origin(ann) or ann
    if container in (bool, int, float, str, list, dict):
        return container, optional
    return None, optional


def param_problems(pipeline: Pipeline, settings: KubeflowSettings) -> list[str]:
    """Parameters KFP cannot type, and secret parameters that nothing supplies."""
    from stackwise.tracking.redaction import is_secret_name

    out: list[str] = []
    if not KFP_PIPELINE_NAME.match(k8s_name(pipeline.name)):
        out.append(
            f"pipeline name {pipeline.name!r} gives the Kubeflow name "
            f"{k8s_name(pipeline.name)!r}, which KFP refuses (1-128 lower-case letters, digits "
            "or '-', starting with a letter or digit): rename the pipeline"
        )
    for name, spec in pipeline.params.items():
        if is_secret_name(name):
            env = secret_env(name)
            if spec.required and env not in settings.secrets:
                out.append(
                    f"secret parameter {name!r} has no default and no Kubernetes secret: add "
                    f"kubeflow.secrets.{env}: {{secret: NAME, key: KEY}} to the stack file "
                    "(secrets are never KFP parameters)"
                )
            continue
        kind, _ = kfp_type(spec)
        if kind is None:
            out.append(
                f"parameter {name!r} has type {spec.type_name}, which KFP cannot type: use int, "
                "float, str, bool, list, dict, a Literal of one of them, or `X | None`"
            )
    return out


def secret_env(param: str) -> str:
    """The environment variable a secret parameter is read from (as `stackwise run` does)."""
    from stackwise.orchestrators.local.resumption import ENV_PREFIX

    return ENV_PREFIX + param.upper()


def schedule_problems(pipeline: Pipeline) -> list[str]:
    schedule = pipeline.schedule
    if schedule is not None and schedule.timezone not in ("UTC", "Etc/UTC"):
        return [
            f"schedule timezone {schedule.timezone!r}: Kubeflow recurring runs follow the "
            "cluster's clock (UTC); give the cron in UTC with timezone='UTC'"
        ]
    return []


def default_value(spec: ParamSpec) -> Any:
    from stackwise.authoring.params import coerce

    return coerce(spec, spec.default)
