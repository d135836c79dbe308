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
