// The people who run `lifeboat recover` (docs/recover.md) as an Entra group, on the resource group
// this module is deployed to. With their own credential they read Lifeboat's snapshots in the
// snapshot group (a custom role holding snapshots/read alone: no beginGetAccess, no write) and
// send the `recover` outcome row through the outcomes DCR (Monitoring Metrics Publisher on that
// rule). Writing the recovered VM and disks needs rights on the VM's own groups, which stay with
// whoever owns those workloads: this module grants none.

@description('Object id of the Entra group of recovery operators.')
param groupId string

@description('Grant snapshots/read here (the snapshot resource group).')
param snapshotRead bool = false

@description('The outcomes data collection rule in this group: Monitoring Metrics Publisher on it ("" for none).')
param dataCollectionRuleName string = ''

param environmentName string

// Monitoring Metrics Publisher: lets an identity send data through a data collection rule.
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var snapshotReadActions = [
  'Microsoft.Compute/snapshots/read'
]

resource snapshotReader 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (snapshotRead) {
  name: guid(resourceGroup().id, environmentName, 'lifeboat-recovery-snapshot-reader')
  properties: {
    roleName: 'Lifeboat recovery snapshot reader (${environmentName}, ${resourceGroup().name})'
    description: 'Recovery operators: list and read Lifeboat\'s snapshots in its snapshot group. No beginGetAccess, no write.'
    type: 'customRole'
    permissions: [
      {
        actions: snapshotReadActions
        notActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource snapshotReaders 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (snapshotRead) {
  name: guid(resourceGroup().id, groupId, 'lifeboat-recovery-snapshot-reader')
  properties: {
    principalId: groupId
    principalType: 'Group'
    roleDefinitionId: snapshotReader.id
  }
}

resource rule 'Microsoft.Insights/dataCollectionRules@2023-03-11' existing = if (!empty(dataCollectionRuleName)) {
  name: dataCollectionRuleName
}

resource publishers 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(dataCollectionRuleName)) {
  name: guid(rule.id, groupId, monitoringMetricsPublisher)
  scope: rule
  properties: {
    principalId: groupId
    principalType: 'Group'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
  }
}
