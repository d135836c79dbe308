#!/bin/sh
# Event Grid after the code is deployed (infra/events.bicep): each target subscription's system
# topic and its subscription to the vm_events function. azd passes main.bicep's outputs as
# environment variables. LIFEBOAT_EXISTING_SYSTEM_TOPICS (optional, JSON) names topics to reuse:
# {"<subscription id>": "<resource group>/<topic name>"}. LIFEBOAT_EVENT_DELIVERY_SCHEMA (optional):
# EventGridSchema (default) or CloudEventSchemaV1_0, the schema Event Grid delivers in.
set -eu
topics="${LIFEBOAT_EXISTING_SYSTEM_TOPICS:-}"
[ -n "$topics" ] || topics='{}'
az deployment sub create \
  --name "lifeboat-events-${AZURE_ENV_NAME}" \
  --subscription "${AZURE_SUBSCRIPTION_ID}" \
  --location "${AZURE_LOCATION}" \
  --template-file infra/events.bicep \
  --parameters \
    targetSubscriptionIds="${TARGET_SUBSCRIPTION_IDS}" \
    functionAppId="${FUNCTION_APP_ID}" \
    storageAccountId="${STORAGE_ACCOUNT_ID}" \
    deadLetterContainer="${DEADLETTER_CONTAINER}" \
    snapshotResourceGroupName="${SNAPSHOT_RESOURCE_GROUP}" \
    excludedResourceGroups="${EXCLUDED_RESOURCE_GROUPS}" \
    existingSystemTopics="$topics" \
    eventDeliverySchema="${LIFEBOAT_EVENT_DELIVERY_SCHEMA:-EventGridSchema}"
