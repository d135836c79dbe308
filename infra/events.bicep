// Event Grid, deployed by the azd postdeploy hook (infra/hooks/postdeploy.sh): a subscription to a
// function endpoint cannot be created before the function's code exists. For every target
// subscription: its system topic (location global; one per source, so an existing one is reused
// when named), dead-lettering with the topic's own identity, and the subscription that sends VM
// writes to the vm_events function.
targetScope = 'subscription'

@description('Comma-separated target subscription ids (main.bicep output TARGET_SUBSCRIPTION_IDS).')
param targetSubscriptionIds string

@description('Resource id of the function app (main.bicep output FUNCTION_APP_ID).')
param functionAppId string

@description('Resource id of the app\'s storage account (main.bicep output STORAGE_ACCOUNT_ID).')
param storageAccountId string

@description('Dead-letter container (main.bicep output DEADLETTER_CONTAINER).')
param deadLetterContainer string

@description('Where new system topics go: the snapshot group of each target.')
param snapshotResourceGroupName string

@description('Comma-separated drill groups whose VM writes are not delivered (EXCLUDED_RESOURCE_GROUPS).')
param excludedResourceGroups string = ''

@description('Delivery schema of the event subscriptions: EventGridSchema or CloudEventSchemaV1_0 (vm_events reads both).')
@allowed(['EventGridSchema', 'CloudEventSchemaV1_0'])
param eventDeliverySchema string = 'EventGridSchema'

@description('Existing system topics to reuse: {"<subscription id>": "<resource group>/<topic name>"}; each needs a system-assigned identity.')
param existingSystemTopics object = {}

var targets = filter(split(replace(targetSubscriptionIds, ' ', ''), ','), s => !empty(s))
var excluded = filter(split(replace(excludedResourceGroups, ' ', ''), ','), g => !empty(g))
var storageParts = split(storageAccountId, '/')

module topics 'app/events-topic.bicep' = [
  for target in targets: {
    name: 'lifeboat-events-topic'
    scope: resourceGroup(target, contains(existingSystemTopics, target) ? split(existingSystemTopics[target], '/')[0] : snapshotResourceGroupName)
    params: {
      existingTopicName: contains(existingSystemTopics, target) ? split(existingSystemTopics[target], '/')[1] : ''
      newTopicName: 'lifeboat-vm-writes'
    }
  }
]

module deadLetterAccess 'app/deadletter-access.bicep' = [
  for (target, i) in targets: {
    name: 'lifeboat-deadletter-${i}'
    scope: resourceGroup(storageParts[2], storageParts[4])
    params: {
      storageAccountName: storageParts[8]
      containerName: deadLetterContainer
      principalId: topics[i].outputs.principalId
    }
  }
]

module subscriptions 'app/events-subscription.bicep' = [
  for (target, i) in targets: {
    name: 'lifeboat-events-subscription'
    scope: resourceGroup(target, contains(existingSystemTopics, target) ? split(existingSystemTopics[target], '/')[0] : snapshotResourceGroupName)
    params: {
      topicName: topics[i].outputs.name
      subscriptionId: target
      functionId: '${functionAppId}/functions/vm_events'
      storageAccountId: storageAccountId
      deadLetterContainer: deadLetterContainer
      excludedResourceGroups: excluded
      eventDeliverySchema: eventDeliverySchema
    }
    dependsOn: [deadLetterAccess]
  }
]
