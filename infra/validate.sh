#!/usr/bin/env bash
# Offline checks of infra/: terraform fmt, init (no backend, providers from a local plugin
# directory), validate, `terraform test` with a mocked aws provider for every envs/*.tfvars;
# then `kubectl kustomize` on every overlay and an offline schema + contract check of the
# result; then the security scanners: hadolint on images/*.Dockerfile, and checkov on the
# Terraform (once per envs/*.tfvars) and on every rendered overlay, where any finding not
# accepted in infra/checkov-skips.yaml fails. Works on a fresh checkout: nothing is
# written inside the repository.
#
#   TF_PLUGIN_DIR   local provider mirror (default /opt/tf-plugins)
#   KUBECTL         kubectl binary with kustomize >= v5 (default: kubectl on PATH)
#   PYTHON          python with kubernetes-validate, kubeflow-trainer-api, jsonschema
#                   (default: .venv/bin/python, missing packages are pip-installed)
#   K8S_VERSION     Kubernetes version of the schemas (default 1.33, the EKS version)
#   SCAN_PYTHON     python with checkov (default .venv-tools/bin/python; `make infra-validate`
#                   installs it from infra/scan-requirements.txt)
#   HADOLINT        hadolint binary (default .venv-tools/bin/hadolint, same install)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
INFRA="$ROOT/infra"
TF_PLUGIN_DIR="${TF_PLUGIN_DIR:-/opt/tf-plugins}"
K8S_VERSION="${K8S_VERSION:-1.33}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/miva-infra-validate.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

step() { printf '\n== %s\n' "$*"; }
die() { printf 'infra-validate: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ tools
command -v terraform >/dev/null || die "terraform not found on PATH"
[ -d "$TF_PLUGIN_DIR/registry.terraform.io/hashicorp/aws" ] \
  || die "no hashicorp/aws provider under TF_PLUGIN_DIR=$TF_PLUGIN_DIR (set TF_PLUGIN_DIR to a provider mirror)"

kustomize_major() { "$1" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p'; }
KUBECTL="${KUBECTL:-$(command -v kubectl || true)}"
if [ -z "$KUBECTL" ] || [ "$(kustomize_major "$KUBECTL")" -lt 5 ] 2>/dev/null; then
  # Debian's kubernetes-client is 1.20 (kustomize v2): too old for components/replacements.
  # The `kubectl` package comes from the Kubernetes/Google Cloud apt repositories.
  if command -v apt-get >/dev/null && ! apt-cache policy kubectl 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    ${SUDO:-} apt-get update -qq >/dev/null 2>&1 || true  # a fresh machine may have stale lists
  fi
  if command -v apt-get >/dev/null && apt-cache policy kubectl 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    step "installing kubectl from apt"
    ${SUDO:-} apt-get install -y -q kubectl >/dev/null
    KUBECTL="$(command -v kubectl)"
  fi
fi
[ -n "$KUBECTL" ] && [ "$(kustomize_major "$KUBECTL" || echo 0)" -ge 5 ] \
  || die "need kubectl with kustomize >= v5 (apt package 'kubectl' from the Kubernetes apt repository), or set KUBECTL"

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON="$(command -v python3)"; fi
fi
SCAN_PYTHON="${SCAN_PYTHON:-$ROOT/.venv-tools/bin/python}"
HADOLINT="${HADOLINT:-$ROOT/.venv-tools/bin/hadolint}"
"$SCAN_PYTHON" -c 'import checkov, yaml' 2>/dev/null \
  || die "no checkov in SCAN_PYTHON=$SCAN_PYTHON (make infra-validate installs .venv-tools from infra/scan-requirements.txt)"
[ -x "$HADOLINT" ] || die "no hadolint at HADOLINT=$HADOLINT (make infra-validate installs it into .venv-tools)"

if ! "$PYTHON" -c 'import kubernetes_validate, kubeflow_trainer_api, jsonschema, yaml' 2>/dev/null; then
  step "installing the schema packages into $PYTHON"
  "$PYTHON" -m pip install -q -c "$ROOT/constraints.txt" kubernetes-validate kubeflow-trainer-api jsonschema pyyaml
fi

# ------------------------------------------------------------------ terraform
export TF_IN_AUTOMATION=1 TF_INPUT=0
export TF_CLI_CONFIG_FILE="$WORK/terraformrc"
: >"$TF_CLI_CONFIG_FILE"
export TF_DATA_DIR="$WORK/tfdata"

step "terraform fmt -check"
terraform fmt -check -recursive -diff "$INFRA/terraform"

# A copy, so no .terraform/ or lock file lands in the checkout.
mkdir -p "$WORK/tf"
tar -C "$INFRA/terraform" --exclude=.terraform --exclude='.terraform.lock.hcl' \
  --exclude='*.tfstate*' --exclude='*.tfplan' --exclude='terraform.tfstate.d' -cf - . | tar -C "$WORK/tf" -xf -

step "terraform init -backend=false -plugin-dir=$TF_PLUGIN_DIR"
terraform -chdir="$WORK/tf" init -backend=false -plugin-dir="$TF_PLUGIN_DIR" -no-color >"$WORK/init.log" \
  || { cat "$WORK/init.log"; die "terraform init failed"; }

step "terraform validate"
terraform -chdir="$WORK/tf" validate -no-color

# Every test file runs with the first environment; the invariants (the ones that depend on
# an environment's values) run again with each other one. The variable-validation tests set
# their own values, so a second pass would repeat them.
first=1
for vars in "$WORK"/tf/envs/*.tfvars; do
  if [ "$first" = 1 ]; then
    step "terraform test (mocked aws provider) -var-file=envs/$(basename "$vars")"
    terraform -chdir="$WORK/tf" test -no-color -var-file="envs/$(basename "$vars")"
    first=0
  else
    step "terraform test (mocked aws provider) -var-file=envs/$(basename "$vars") -filter=tests/invariants.tftest.hcl"
    terraform -chdir="$WORK/tf" test -no-color -var-file="envs/$(basename "$vars")" \
      -filter=tests/invariants.tftest.hcl
  fi
done

# ------------------------------------------------------------------ kustomize
cp -r "$INFRA/k8s" "$WORK/k8s"
mkdir -p "$WORK/rendered"
rendered=()
# Overlays read the files `make infra-apply` writes; where absent, the committed examples.
for overlay in "$WORK"/k8s/overlays/*/; do
  for generated in infra.env kfp-providers.yaml; do
    if [ -f "$overlay/$generated.example" ] && [ ! -f "$overlay/$generated" ]; then
      cp "$overlay/$generated.example" "$overlay/$generated"
    fi
  done
done
for overlay in "$WORK"/k8s/overlays/*/; do
  name="$(basename "$overlay")"
  step "kubectl kustomize overlays/$name"
  "$KUBECTL" kustomize "$overlay" >"$WORK/rendered/$name.yaml"
  rendered+=("$WORK/rendered/$name.yaml")
done
[ "${#rendered[@]}" -gt 0 ] || die "no overlays under infra/k8s/overlays"

step "schema and contract check (Kubernetes $K8S_VERSION)"
"$PYTHON" "$INFRA/scripts/check_manifests.py" --kubernetes-version "$K8S_VERSION" "${rendered[@]}"

# Serving (KServe InferenceService for the champion): not an overlay, so per-pod rules only.
step "kubectl kustomize k8s/serving + schema check"
[ -f "$WORK/k8s/serving/serving.env" ] || cp "$WORK/k8s/serving/serving.env.example" "$WORK/k8s/serving/serving.env"
"$KUBECTL" kustomize "$WORK/k8s/serving" >"$WORK/rendered-serving.yaml"
"$PYTHON" "$INFRA/scripts/check_manifests.py" --kubernetes-version "$K8S_VERSION" --pods-only "$WORK/rendered-serving.yaml"

# ------------------------------------------------------------------ scanners
step "hadolint $("$HADOLINT" --version | sed 's/.* //') images/*.Dockerfile"
"$HADOLINT" --config "$ROOT/images/hadolint.yaml" "$ROOT"/images/*.Dockerfile

scan_targets=()
for vars in "$WORK"/tf/envs/*.tfvars; do
  name="$(basename "$vars" .tfvars)"
  scan_targets+=(--terraform "$name=$WORK/tf:envs/$name.tfvars")
done
for file in "${rendered[@]}"; do
  scan_targets+=(--kubernetes "$(basename "$file" .yaml)=$file")
done
scan_targets+=(--kubernetes "serving=$WORK/rendered-serving.yaml")
step "checkov $("$SCAN_PYTHON" -c 'from checkov.version import version; print(version)') (skip list: infra/checkov-skips.yaml)"
"$SCAN_PYTHON" "$INFRA/scripts/scan.py" --skips "$INFRA/checkov-skips.yaml" "${scan_targets[@]}"

step "infra-validate: all checks passed"
