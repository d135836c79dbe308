#!/bin/sh
# Registers the resource providers Lifeboat calls in every target subscription (Compute,
# Recovery Services) and the one its Event Grid topics need. The SDKs would try to register on
# a 409 MissingSubscriptionRegistration, which Lifeboat's least-privilege identity cannot do.
set -eu
: "${LIFEBOAT_TARGET_SUBSCRIPTIONS:?set it with azd env set LIFEBOAT_TARGET_SUBSCRIPTIONS id1,id2}"
for subscription in $(printf '%s' "$LIFEBOAT_TARGET_SUBSCRIPTIONS" | tr ',' ' '); do
  for namespace in Microsoft.Compute Microsoft.RecoveryServices Microsoft.EventGrid; do
    echo "registering $namespace in $subscription"
    az provider register --namespace "$namespace" --subscription "$subscription" --wait
  done
done

# The keys that sign queue messages: one per environment, generated once and kept in azd's env
# (infra stores it in Key Vault). Rotate: azd env set LIFEBOAT_MESSAGE_SIGNING_KEYS "new=...,old=..."
if [ -z "$(azd env get-value LIFEBOAT_MESSAGE_SIGNING_KEYS 2>/dev/null || true)" ]; then
  key="k$(date +%Y%m%d)=$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')"
  azd env set LIFEBOAT_MESSAGE_SIGNING_KEYS "$key"
  echo "generated a message signing key for this environment"
fi
