#!/usr/bin/env bash
# make infra-plan / infra-apply / infra-destroy: terraform against real AWS for one
# environment (env=dev|prod). State is local, one workspace per environment; see
# docs/readme/80-infrastructure.md for a remote (S3) backend.
#
#   terraform.sh plan|apply|destroy ENV
#   AUTO_APPROVE=1   skip the confirmation of apply/destroy
set -euo pipefail

action="${1:?usage: terraform.sh plan|apply|destroy ENV}"
env="${2:?usage: terraform.sh plan|apply|destroy ENV}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TF="$ROOT/infra/terraform"
OVERLAY="$ROOT/infra/k8s/overlays/$env"
VARS="envs/$env.tfvars"
PLAN="$env.tfplan"

[ -f "$TF/$VARS" ] || { echo "no infra/terraform/$VARS (env=$env)" >&2; exit 1; }
command -v terraform >/dev/null || { echo "terraform not found on PATH" >&2; exit 1; }
approve=()
[ "${AUTO_APPROVE:-0}" = "1" ] && approve=(-auto-approve)

tf() { terraform -chdir="$TF" "$@"; }

# The images the k8s manifests run: the build `make images` recorded (tag and digests).
# Without it the overlay gets a placeholder image that the manifest check rejects.
TAGS="$ROOT/images/tags.env"
tags_value() { sed -n "s/^$1=//p" "$TAGS" | tail -n 1; }
if [ -f "$TAGS" ] && [ -n "$(tags_value IMAGE_TAG)" ]; then
  export TF_VAR_image_tag="$(tags_value IMAGE_TAG)"
  digests=()
  for pair in "miva-base:IMAGE_DIGEST_BASE" "miva-gpu:IMAGE_DIGEST_GPU"; do
    value="$(tags_value "${pair#*:}")"
    [ -n "$value" ] && digests+=("\"${pair%%:*}\" = \"$value\"")
  done
  export TF_VAR_image_digests="{ $(IFS=,; echo "${digests[*]}") }"
  echo "images: tag $TF_VAR_image_tag from images/tags.env (registry $(tags_value IMAGE_REGISTRY))"
else
  echo "images: no images/tags.env yet; run make images IMAGE_REGISTRY=<ecr> and then this again" >&2
fi

tf init -input=false -upgrade=false >/dev/null
tf workspace select -or-create "$env" >/dev/null

case "$action" in
  plan)
    tf plan -input=false -var-file="$VARS" -out="$PLAN"
    echo "plan saved to infra/terraform/$PLAN; apply it with: make infra-apply env=$env"
    ;;
  apply)
    if [ -f "$TF/$PLAN" ]; then
      tf apply -input=false "$PLAN"
      rm -f "$TF/$PLAN"
    else
      tf apply -input=false "${approve[@]}" -var-file="$VARS"
    fi
    # The values the kustomize overlay reads (git-ignored: account specific).
    tf output -raw k8s_env >"$OVERLAY/infra.env"
    tf output -raw kfp_launcher_providers >"$OVERLAY/kfp-providers.yaml"
    echo
    echo "wrote infra/k8s/overlays/$env/infra.env and kfp-providers.yaml"
    echo "next:"
    echo "  $(tf output -raw update_kubeconfig_command)"
    echo "  kubectl apply -k infra/k8s/overlays/$env      # after KFP and Kubeflow Trainer are installed"
    echo "  pipeline config: pipeline.image_registry=$(tf output -raw image_registry)"
    echo "                   pipeline.pipeline_root=$(tf output -raw pipeline_root)"
    ;;
  destroy)
    tf destroy -input=false "${approve[@]}" -var-file="$VARS"
    rm -f "$OVERLAY/infra.env" "$OVERLAY/kfp-providers.yaml"
    ;;
  *)
    echo "unknown action $action (plan, apply, destroy)" >&2
    exit 1
    ;;
esac
