// A subscription's system topic for Azure Resource Manager events: new, or an existing one reused
// (only one system topic per source is allowed). Its system-assigned identity dead-letters.

@description('Name of an existing system topic in this resource group; empty creates one.')
param existingTopicName string

param newTopicName string

resource created 'Microsoft.EventGrid/systemTopics@2022-06-15' = if (empty(existingTopicName)) {
  name: newTopicName
  location: 'global'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: subscription().id
    topicType: 'Microsoft.Resources.Subscriptions'
  }
}

resource reused 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = if (!empty(existingTopicName)) {
  name: existingTopicName
}

output name string = empty(existingTopicName) ? created.name : reused.name
output principalId string = empty(existingTopicName) ? created.identity.principalId : reused.identity.principalId
