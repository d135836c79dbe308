// Lifeboat's custom roles, one per scope it works at, built from the hand-kept table
// infra/roles/actions.json (operation -> actions, a doc link per row). A role holds the union of
// the rows of its scope for the features this deployment enables; tests/test_infra_roles.py
// evaluates these expressions against the table. Role names are tenant-unique (they carry the
// environment name); assignable scopes are the target (and drill) subscriptions.
targetScope = 'subscription'

@description('azd environment name: makes the role names unique in the tenant.')
param environmentName string

@description('Subscriptions the roles may be assigned in (targets and the drill subscription).')
param assignableSubscriptionIds array

@description('TAG_DEFAULT_POLICY: Lifeboat writes lifeboat:policy on new VMs.')
param tagDefaultPolicy bool

@description('DR drills are enabled (drill regions given).')
param drills bool

@description('COUNT_ALL_SNAPSHOTS: snapshots/read on the whole subscription, for full counts against Azure\'s snapshot limits.')
param countAllSnapshots bool = false

@description('RECOVERY_POINT_DRILLS: define the restore-trigger role for the backup-writer identity.')
param recoveryPointDrills bool = false

@description('Site Recovery test failovers of recovery plans (off): a custom role with only test failover, its cleanup and reads; never Site Recovery Operator.')
param siteRecoveryTestFailover bool = false

@description('Resource id of the group holding the outcomes workspace: where the query roles may be assigned.')
param workspaceGroupId string

var table = loadJsonContent('../roles/actions.json')

var subscriptionCore = [for row in table.scopes.subscription.core: row.actions]
var subscriptionTagDefaultPolicy = [for row in table.scopes.subscription.tagDefaultPolicy: row.actions]
var subscriptionDrills = [for row in table.scopes.subscription.drills: row.actions]
var subscriptionCountAllSnapshots = [for row in table.scopes.subscription.countAllSnapshots: row.actions]
var snapshotGroupCore = [for row in table.scopes.snapshotGroup.core: row.actions]
var snapshotGroupDrills = [for row in table.scopes.snapshotGroup.drills: row.actions]
var drillSubscriptionDrills = [for row in table.scopes.drillSubscription.drills: row.actions]
var drillGroupDrills = [for row in table.scopes.drillGroup.drills: row.actions]
var siteRecoveryTestFailoverRows = [for row in table.scopes.siteRecovery.testFailover: row.actions]
var workspaceCore = [for row in table.scopes.workspace.core: row.actions]
var outcomesTableCore = [for row in table.scopes.outcomesTable.core: row.actions]
var restoreTriggerRows = [for row in table.scopes.separateIdentity.recoveryPointDrills: row.actions]

var subscriptionActions = union(flatten(subscriptionCore), tagDefaultPolicy ? flatten(subscriptionTagDefaultPolicy) : [], drills ? flatten(subscriptionDrills) : [], countAllSnapshots ? flatten(subscriptionCountAllSnapshots) : [])
var snapshotGroupActions = union(flatten(snapshotGroupCore), drills ? flatten(snapshotGroupDrills) : [])
var drillSubscriptionActions = union(flatten(drillSubscriptionDrills), [])
var drillGroupActions = union(flatten(drillGroupDrills), [])
var siteRecoveryActions = union(flatten(siteRecoveryTestFailoverRows), [])
var workspaceActions = union(flatten(workspaceCore), [])
var outcomesTableActions = union(flatten(outcomesTableCore), [])
var restoreTriggerActions = union(flatten(restoreTriggerRows), [])

var scopes = [for id in assignableSubscriptionIds: '/subscriptions/${id}']

resource subscriptionRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(tenant().tenantId, environmentName, 'lifeboat-subscription')
  properties: {
    roleName: 'Lifeboat subscription reader (${environmentName})'
    description: 'Lifeboat on a target subscription: VM and disk reads, the linked checks of snapshot create, polling reads.'
    type: 'customRole'
    permissions: [
      {
        actions: subscriptionActions
        notActions: []
      }
    ]
    assignableScopes: scopes
  }
}

resource snapshotRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(tenant().tenantId, environmentName, 'lifeboat-snapshots')
  properties: {
    roleName: 'Lifeboat snapshot operator (${environmentName})'
    description: 'Lifeboat in its snapshot resource group: create, read and delete snapshots. No beginGetAccess.'
    type: 'customRole'
    permissions: [
      {
        actions: snapshotGroupActions
        notActions: []
      }
    ]
    assignableScopes: scopes
  }
}

resource drillSubscriptionRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (drills) {
  name: guid(tenant().tenantId, environmentName, 'lifeboat-drill-subscription')
  properties: {
    roleName: 'Lifeboat drill poller (${environmentName})'
    description: 'Lifeboat on the subscription holding drill groups: operation polling reads.'
    type: 'customRole'
    permissions: [
      {
        actions: drillSubscriptionActions
        notActions: []
      }
    ]
    assignableScopes: scopes
  }
}

resource drillGroupRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (drills) {
  name: guid(tenant().tenantId, environmentName, 'lifeboat-drill-group')
  properties: {
    roleName: 'Lifeboat drill operator (${environmentName})'
    description: 'Lifeboat in a drill resource group: the isolated network, disks and VM of a drill.'
    type: 'customRole'
    permissions: [
      {
        actions: drillGroupActions
        notActions: []
      }
    ]
    assignableScopes: scopes
  }
}

// Test failovers of Site Recovery recovery plans (drills of replicated VMs): test failover and its
// cleanup, at plan and item level, and the reads that follow them. Never the built-in Site Recovery
// Operator, which may also fail production over, commit, reprotect and switch protection.
resource testFailoverRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (siteRecoveryTestFailover) {
  name: guid(tenant().tenantId, environmentName, 'lifeboat-site-recovery-test-failover')
  properties: {
    roleName: 'Lifeboat Site Recovery test failover (${environmentName})'
    description: 'Lifeboat on Recovery Services vaults: test failover and test failover cleanup of recovery plans and replicated items, and reads. No other failover.'
    type: 'customRole'
    permissions: [
      {
        actions: siteRecoveryActions
        notActions: []
      }
    ]
    assignableScopes: scopes
  }
}

// The posture timer queries the outcomes table and nothing else: one role on the workspace runs a
// query and reads no table, one on LifeboatOutcomes_CL alone reads it (manage-table-access).
resource workspaceQueryRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(tenant().tenantId, environmentName, 'lifeboat-workspace-query')
  properties: {
    roleName: 'Lifeboat outcomes query runner (${environmentName})'
    description: 'Lifeboat on its outcomes workspace: read the workspace and run a query; no table data.'
    type: 'customRole'
    permissions: [
      {
        actions: workspaceActions
        notActions: []
      }
    ]
    assignableScopes: [
      workspaceGroupId
    ]
  }
}

resource outcomesReaderRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(tenant().tenantId, environmentName, 'lifeboat-outcomes-reader')
  properties: {
    roleName: 'Lifeboat outcomes table reader (${environmentName})'
    description: 'Lifeboat on the LifeboatOutcomes_CL table only: query its data.'
    type: 'customRole'
    permissions: [
      {
        actions: outcomesTableActions
        notActions: []
      }
    ]
    assignableScopes: [
      workspaceGroupId
    ]
  }
}

// The backup-writer identity's role for recovery-point drills: the restore action, the operation
// status and the job reads, nothing else of Backup Operator. The operator assigns it on the vaults
// (with VM write on the drilled VMs, which Azure's restore requires); Lifeboat's identity never.
resource restoreTriggerRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (recoveryPointDrills) {
  name: guid(tenant().tenantId, environmentName, 'lifeboat-restore-trigger')
  properties: {
    roleName: 'Lifeboat restore trigger (${environmentName})'
    description: 'Recovery-point drills, as the backup-writer identity: trigger a restore, read its operation and job.'
    type: 'customRole'
    permissions: [
      {
        actions: restoreTriggerActions
        notActions: []
      }
    ]
    assignableScopes: scopes
  }
}

output subscriptionRoleName string = subscriptionRole.name
output snapshotRoleName string = snapshotRole.name
output drillSubscriptionRoleName string = drills ? drillSubscriptionRole.name : ''
output drillGroupRoleName string = drills ? drillGroupRole.name : ''
output workspaceQueryRoleName string = workspaceQueryRole.name
output testFailoverRoleName string = siteRecoveryTestFailover ? testFailoverRole.name : ''
output outcomesReaderRoleName string = outcomesReaderRole.name
output restoreTriggerRoleName string = recoveryPointDrills ? restoreTriggerRole.name : ''
