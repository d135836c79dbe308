// The function app's storage: host storage (blobs, queues, tables) reached with Lifeboat's
// identity only (shared keys off), the queues Lifeboat uses, the deployment package container,
// the Event Grid dead-letter container and the private container of poisoned messages' full text
// (deleted by a lifecycle rule after poisonRetentionDays).

param name string
param location string
param tags object = {}

@description('Principal id of Lifeboat\'s identity: it gets the three data roles.')
param identityPrincipalId string

@description('Queues the app uses; the host makes each one\'s -poison queue itself.')
param queueNames array

@description('Container that holds the deployment package (Flex).')
param deploymentContainerName string

@description('Container Event Grid dead-letters undeliverable VM events to.')
param deadLetterContainerName string

@description('Private container that keeps poisoned messages\' full text as sha256/<hex> (shared/names.py POISON_CONTAINER).')
param poisonContainerName string = 'lifeboat-poison'

@description('Days a poisoned message\'s blob is kept after it was written; then the lifecycle rule deletes it.')
@minValue(1)
param poisonRetentionDays int = 30

@description('Firewall: deny by default, Azure services (Event Grid dead-lettering) bypass; the app comes in through private endpoints.')
param restrictNetwork bool = false

@description('Public addresses or CIDR ranges let through the firewall (operators running lifeboat drill start or status).')
param allowedIpRanges array = []

// Role definition ids (built-in roles).
var roles = {
  // Storage Blob Data Owner: the host's leases and the deployment package.
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Storage Blob Data Contributor: Lifeboat's own writes of poisoned messages' full text, on
  // their container only (stays granted if the host's account-wide role is ever narrowed).
  blobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  // Storage Queue Data Contributor: queue triggers, Lifeboat's own paced sends, poison queues.
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // Storage Table Data Contributor: the host's timer and scale bookkeeping.
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  // checkov:skip=CKV_AZURE_206: Zone-redundant, not geo-redundant: the account holds transient queue messages, host leases and a rebuildable package; Azure itself is Lifeboat's source of truth, so a geo copy would restore nothing worth its cost.
  sku: {
    name: 'Standard_ZRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // checkov:skip=CKV_AZURE_59: The public endpoint stays on: Event Grid dead-letters through it as a trusted Azure service (the bypass below), and without restrictNetwork the Flex host reaches its storage through it. Shared keys are off: every request needs an Entra token with a data role.
    publicNetworkAccess: 'Enabled'
    // checkov:skip=CKV_AZURE_35: Deny by default is the restrictNetwork option (the app then comes in through private endpoints); without a virtual network the Flex host has no fixed addresses to allow.
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: restrictNetwork ? 'Deny' : 'Allow'
      ipRules: [for range in allowedIpRanges: {
        value: range
        action: 'Allow'
      }]
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource poisonContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: poisonContainerName
  properties: {
    publicAccess: 'None'
  }
}

// The drain deletes a poisoned message once its full text is in its blob: the blob is the only
// copy, kept poisonRetentionDays after it was written (blobs there are written once, never changed).
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'deletePoisonedMessages'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${poisonContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterCreationGreaterThan: poisonRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queue in queueNames: {
    parent: queueService
    name: queue
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, roles.blobDataOwner)
  scope: storage
  properties: {
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataOwner)
  }
}

resource poisonBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(poisonContainer.id, identityPrincipalId, roles.blobDataContributor)
  scope: poisonContainer
  properties: {
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataContributor)
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, roles.queueDataContributor)
  scope: storage
  properties: {
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.queueDataContributor)
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identityPrincipalId, roles.tableDataContributor)
  scope: storage
  properties: {
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.tableDataContributor)
  }
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainer.name}'
output deadLetterContainerName string = deadLetterContainer.name
output poisonContainerName string = poisonContainer.name
