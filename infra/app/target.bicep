// One target subscription: Lifeboat's snapshot resource group and the roles Lifeboat's identity
// holds there (DESIGN.md "Identity and least privilege"): the subscription reader role, snapshot
// read/write/delete only on the snapshot group, Backup Reader on the vaults (at subscription
// scope: vaults are found by listing, and backupStatus is a subscription-level action), Backup
// Operator only when on-demand backup is on, the test-failover role only with site-recovery drills.
// Nothing here can write a production VM.
targetScope = 'subscription'

param location string
param tags object = {}

param snapshotResourceGroupName string
param principalId string

@description('Custom role names (GUIDs) from roles.bicep.')
param subscriptionRoleName string
param snapshotRoleName string

@description('ON_DEMAND_BACKUP: Lifeboat triggers backups of VMs whose RPO is breached.')
param onDemandBackup bool

@description('The site-recovery test-failover role (roles.bicep), empty unless SITE_RECOVERY_DRILLS is on.')
param testFailoverRoleName string = ''

var builtIn = loadJsonContent('../roles/actions.json', '$.builtInRoles')

resource snapshotGroup 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: snapshotResourceGroupName
  location: location
  tags: union(tags, { 'lifeboat:managed': 'snapshots' })
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, subscriptionRoleName)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', subscriptionRoleName)
  }
}

resource backupReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, builtIn.backupReader.id)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtIn.backupReader.id)
  }
}

resource backupOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (onDemandBackup) {
  name: guid(subscription().id, principalId, builtIn.backupOperator.id)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtIn.backupOperator.id)
  }
}

// Site-recovery drills only: test failover and its cleanup of the subscription's recovery plans,
// the reads that follow them, and the tag that marks each test VM as the drill's.
resource testFailover 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(testFailoverRoleName)) {
  name: guid(subscription().id, principalId, 'lifeboat-test-failover')
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', testFailoverRoleName)
  }
}

module snapshots 'group-role.bicep' = {
  name: 'lifeboat-snapshot-role'
  scope: snapshotGroup
  params: {
    roleDefinitionName: snapshotRoleName
    principalId: principalId
  }
}

output snapshotResourceGroupId string = snapshotGroup.id
