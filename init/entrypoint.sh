#!/usr/bin/env bash
# Entrypoint of the interpose-init container image: installs the capture rules in the pod's
# network namespace with `interpose-init apply`, then checks them with `interpose-init verify`.
#
# Options come from the arguments when there are any, else from INTERPOSE_* environment
# variables (see init/README.md). A leading `istio-iptables` argument (how an istio-init pod
# spec calls pilot-agent) is dropped, so an existing istio-init argument list works unchanged.
# A leading `apply` is dropped too; any other interpose-init subcommand (render, probe,
# cleanup, verify, confirm, help) is run as it is, for debugging the image.
#
# Exit status: that of the failing interpose-init command (64 bad option, 3 missing tool,
# 4 not privileged, 5 kernel feature missing or host mode found no sshd, 1 other; see
# docs/capture.md), 64 for a bad environment variable, 0 when the rules are in place.
set -euo pipefail

BIN="${INTERPOSE_INIT_BIN:-/usr/local/bin/interpose-init}"

# Prints a command the way a shell would read it back: words needing quotes in single quotes.
show() {
    local out="" word
    for word in "$@"; do
        if [[ -n "$word" && "$word" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
            out+="$word "
        else
            out+="'${word//\'/\'\\\'\'}' "
        fi
    done
    printf '+ %s\n' "${out% }"
}

die_usage() {
    printf 'interpose-init entrypoint: %s\n' "$1" >&2
    exit 64
}

# Prints "true", "false" or "" (unset or empty) for a boolean variable; refuses other values.
boolean() {
    local var="$1"
    if [[ ! -v "$var" ]]; then
        echo ""
        return
    fi
    case "${!var,,}" in
        true|1|yes|on) echo true ;;
        false|0|no|off) echo false ;;
        "") echo "" ;;
        *) die_usage "$var='${!var}' is not a boolean; expected true or false" ;;
    esac
}

args=()
if (( $# > 0 )); then
    case "$1" in
        istio-iptables|apply)
            shift
            ;;
        render|probe|cleanup|verify|confirm|help|-h|--help)
            show "$BIN" "$@"
            exec "$BIN" "$@"
            ;;
    esac
    args=("$@")
else
    # A variable that is set, even to the empty string, is passed on: INTERPOSE_INBOUND_PORTS=""
    # means no inbound capture and INTERPOSE_OUTBOUND_CIDRS="" no outbound capture, as -b '' and
    # -i '' do. An unset variable keeps interpose-init's default.
    option() {
        local flag="$1" var="$2"
        if [[ -v "$var" ]]; then
            args+=("$flag" "${!var}")
        fi
    }

    option --outbound-port INTERPOSE_OUTBOUND_PORT
    option --inbound-port INTERPOSE_INBOUND_PORT
    option --proxy-uid INTERPOSE_PROXY_UID
    option --proxy-gid INTERPOSE_PROXY_GID
    option --mode INTERPOSE_MODE
    option --inbound-ports INTERPOSE_INBOUND_PORTS
    option --exclude-inbound-ports INTERPOSE_EXCLUDE_INBOUND_PORTS
    option --outbound-cidrs INTERPOSE_OUTBOUND_CIDRS
    option --exclude-outbound-cidrs INTERPOSE_EXCLUDE_OUTBOUND_CIDRS
    option --outbound-ports INTERPOSE_OUTBOUND_PORTS
    option --exclude-outbound-ports INTERPOSE_EXCLUDE_OUTBOUND_PORTS
    option --exclude-interfaces INTERPOSE_EXCLUDE_INTERFACES
    if [[ -n "${INTERPOSE_QUEUE:-}" ]]; then
        args+=(--queue "$INTERPOSE_QUEUE")
    fi

    # Command substitution runs in a subshell, where die_usage's exit would be lost: check the
    # status explicitly.
    capture_dns="$(boolean INTERPOSE_CAPTURE_DNS)" || exit 64
    drop_invalid="$(boolean INTERPOSE_DROP_INVALID)" || exit 64
    queue_bypass="$(boolean INTERPOSE_QUEUE_BYPASS)" || exit 64
    if [[ "$capture_dns" == true ]]; then args+=(--capture-dns); fi
    if [[ "$drop_invalid" == true ]]; then args+=(--drop-invalid); fi
    if [[ "$queue_bypass" == true ]]; then args+=(--queue-bypass); fi
    if [[ "$queue_bypass" == false ]]; then args+=(--no-queue-bypass); fi
fi

# `apply -n` / `--dry-run` only prints the plan; there is nothing to verify afterwards.
dry_run=false
for a in "${args[@]}"; do
    if [[ "$a" == -n || "$a" == --dry-run ]]; then dry_run=true; fi
done

show "$BIN" apply "${args[@]}"
"$BIN" apply "${args[@]}"

if [[ "$dry_run" == true ]]; then
    exit 0
fi

verify="$(boolean INTERPOSE_VERIFY)" || exit 64
if [[ "$verify" == false ]]; then
    echo "interpose-init entrypoint: INTERPOSE_VERIFY=false: not verifying"
    exit 0
fi

# verify first checks the record apply stored with the table, which needs no more than apply
# does; only when that does not match does it build the expected table in a scratch network
# namespace (CAP_SYS_ADMIN) to print a line diff. This entrypoint runs verify only where such
# a namespace can be created; in an init container with only NET_ADMIN and NET_RAW it says so
# and stops here (apply has already checked its own work: it is atomic and exits non-zero on
# any failure).
if ! unshare --net true 2>/dev/null; then
    echo "interpose-init entrypoint: not verifying: creating a scratch network namespace is not permitted here (verify's line diff needs CAP_SYS_ADMIN)"
    exit 0
fi

show "$BIN" verify "${args[@]}"
exec "$BIN" verify "${args[@]}"
