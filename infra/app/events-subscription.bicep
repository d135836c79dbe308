// The event subscription that delivers VM writes to the vm_events function: ResourceWriteSuccess
// only, data.operationName = Microsoft.Compute/virtualMachines/write, drill groups excluded by
// subject, one event per batch (the handler validates, filters and enqueues), retries 30 times
// over 24 hours, then dead-letters to a blob container. Delivered in the Event Grid schema or
// CloudEvents 1.0 (eventDeliverySchema).

param topicName string

@description('The target subscription the topic watches (for the excluded subjects).')
param subscriptionId string

@description('Resource id of the vm_events function.')
param functionId string

param storageAccountId string
param deadLetterContainer string

@description('Drill resource groups: their VM writes are Lifeboat\'s own.')
param excludedResourceGroups array

@description('The schema events are delivered in: the Event Grid schema, or CloudEvents 1.0 (the vm_events function reads both; the Functions host answers either handshake).')
@allowed(['EventGridSchema', 'CloudEventSchemaV1_0'])
param eventDeliverySchema string = 'EventGridSchema'

var excludedSubjects = [for group in excludedResourceGroups: '/subscriptions/${subscriptionId}/resourceGroups/${group}/']
var operationFilter = [
  {
    operatorType: 'StringIn'
    key: 'data.operationName'
    values: ['Microsoft.Compute/virtualMachines/write']
  }
]
var subjectFilter = [
  {
    operatorType: 'StringNotBeginsWith'
    key: 'subject'
    values: excludedSubjects
  }
]

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: topicName
}

resource vmEvents 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'lifeboat-vm-events'
  properties: {
    eventDeliverySchema: eventDeliverySchema
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: functionId
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: ['Microsoft.Resources.ResourceWriteSuccess']
      enableAdvancedFilteringOnArrays: false
      advancedFilters: empty(excludedSubjects) ? operationFilter : concat(operationFilter, subjectFilter)
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storageAccountId
          blobContainerName: deadLetterContainer
        }
      }
    }
  }
}
