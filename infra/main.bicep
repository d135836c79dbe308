// Lifeboat on Azure: `azd up` from the repository root. Subscription scope: the app's resource
// group (identity, storage, Flex Consumption app, Log Analytics, Application Insights, the
// outcomes table and its DCR, alerts, workbook), plus, in every target subscription, the snapshot
// resource group and Lifeboat's roles, and the drill groups. Event Grid comes after the code
// (infra/events.bicep, azd postdeploy hook); resource providers are registered by the
// preprovision hook (a template cannot register one). Safe path: DRY_RUN is on until you turn it off.
targetScope = 'subscription'

@minLength(1)
@maxLength(40)
@description('azd environment name: resource names, role names and tags derive from it.')
param environmentName string

@minLength(1)
@description('Region of the app, its storage and monitoring.')
param location string

@description('Comma-separated ids of the subscriptions Lifeboat protects (TARGET_SUBSCRIPTIONS).')
param targetSubscriptionIds string

@description('Comma-separated e-mail addresses the alert rules notify.')
param alertEmails string

@description('Comma-separated regions that get a drill resource group; empty turns drills off.')
param drillRegions string = ''

@description('Subscription that holds the drill groups; empty: each target subscription holds its own.')
param drillSubscriptionId string = ''

@description('DRY_RUN: plan and report without writing. Start with true; read a week of plans first.')
param dryRun bool = true

@description('TAG_DEFAULT_POLICY: tag new VMs with the default policy (grants tags/write).')
param tagDefaultPolicy bool = false

@description('ON_DEMAND_BACKUP: trigger backups for breached RPOs (assigns Backup Operator).')
param onDemandBackup bool = false

@description('ENABLE_BACKUP_PROTECTION: needs a separate identity with VM write (BACKUP_WRITER_CLIENT_ID); infra grants it nothing.')
param enableBackupProtection bool = false

@description('Client id of the separate identity that enables backup protection, if any.')
param backupWriterClientId string = ''

@description('RECOVERY_POINT_DRILLS: drills from Azure Backup recovery points; the restore runs as the backup-writer identity, which needs VM write on the source VMs.')
param recoveryPointDrills bool = false

@description('COUNT_ALL_SNAPSHOTS: read every snapshot of each target subscription (snapshots/read there) so limit warnings count what Azure counts, not only Lifeboat\'s group.')
param countAllSnapshots bool = false

@description('RESTORE_STAGING_ACCOUNTS: region=storage account id pairs where restores stage (Lifeboat\'s, the vault\'s region, not zone-redundant).')
param restoreStagingAccounts string = ''

@description('SITE_RECOVERY_DRILLS: scheduled test failovers of Site Recovery plans (needs the siteRecoveryTestFailover role on the vaults).')
param siteRecoveryDrills bool = false

@description('SITE_RECOVERY_ALLOWED_ACTIONS: recovery-plan actions (script, runbook, manual) allowed to run in a test failover, by name.')
param siteRecoveryAllowedActions string = ''

@description('Lifeboat\'s snapshot resource group in every target subscription.')
param snapshotResourceGroupName string = 'rg-lifeboat-snapshots'

@description('Drill group names; {region} is replaced.')
param drillResourceGroupTemplate string = 'rg-lifeboat-drill-{region}'

@description('Extra groups Lifeboat leaves alone (DRILL_RESOURCE_GROUPS: region=group pairs or names).')
param drillResourceGroups string = ''

@description('Flex maximumInstanceCount: per function scale group, not the pacing mechanism.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 10

param rotationSchedule string = '0 0 2 * * *'
param verificationSchedule string = '0 0 6 * * *'
param drillSchedule string = '0 0 4 * * *'
param sweeperSchedule string = '0 30 * * * *'
param poisonSchedule string = '0 */15 * * * *'
@description('POSTURE_SCHEDULE: the daily posture read back from the outcomes (after the nightly runs).')
param postureSchedule string = '0 30 6 * * *'

@description('Object id of the Entra group that runs lifeboat recover: snapshots/read on each snapshot group and Monitoring Metrics Publisher on the outcomes DCR ("" for none).')
param recoveryOperatorsGroupId string = ''

@description('Storage firewall: deny by default with the Azure-services bypass (Event Grid dead-lettering), private endpoints for blob, queue and table in a new virtual network the app is integrated with.')
param restrictStorageNetwork bool = false

@description('With restrictStorageNetwork: comma-separated public IPs (not /31 or /32) or CIDR ranges of operators who run lifeboat drill start or lifeboat status.')
param operatorIpRanges string = ''

@secure()
@description('MESSAGE_SIGNING_KEYS, kept in Key Vault: the preprovision hook generates one per environment.')
param messageSigningKeys string

var tags = {
  'azd-env-name': environmentName
  app: 'lifeboat'
}
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var targets = filter(split(replace(targetSubscriptionIds, ' ', ''), ','), s => !empty(s))
var emails = filter(split(replace(alertEmails, ' ', ''), ','), e => !empty(e))
var regions = filter(split(replace(drillRegions, ' ', ''), ','), r => !empty(r))
var drills = !empty(regions)
var drillSubscriptions = empty(drillSubscriptionId) ? targets : [drillSubscriptionId]
var assignable = union(targets, drillSubscriptions)
var drillGroupNames = [for region in regions: replace(drillResourceGroupTemplate, '{region}', region)]
var operatorRanges = filter(split(replace(operatorIpRanges, ' ', ''), ','), r => !empty(r))
var recoveryOperators = !empty(recoveryOperatorsGroupId)

// The queues of DESIGN.md "Names"; the host makes each one's -poison queue.
var queueNames = [
  'rotation-plan'
  'rotation-vm'
  'rotation-prune'
  'verification-vault'
  'onboarding'
  'drill-step'
  'outcomes-retry'
]
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'eventgrid-deadletter'
var armEndpoint = environment().resourceManager
var armBase = endsWith(armEndpoint, '/') ? substring(armEndpoint, 0, length(armEndpoint) - 1) : armEndpoint

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: group
  params: {
    name: 'id-lifeboat-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: group
  params: {
    name: 'stlifeboat${resourceToken}'
    location: location
    tags: tags
    identityPrincipalId: identity.outputs.principalId
    queueNames: queueNames
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    restrictNetwork: restrictStorageNetwork
    allowedIpRanges: restrictStorageNetwork ? operatorRanges : []
  }
}

// restrictStorageNetwork: the app's virtual network and the storage account's private endpoints.
module network 'app/network.bicep' = if (restrictStorageNetwork) {
  name: 'network'
  scope: group
  params: {
    name: 'vnet-lifeboat-${resourceToken}'
    location: location
    tags: tags
  }
}

module storageEndpoints 'app/storage-endpoints.bicep' = if (restrictStorageNetwork) {
  name: 'storage-endpoints'
  scope: group
  params: {
    storageAccountName: storage.outputs.name
    vnetId: restrictStorageNetwork ? network.outputs.id : ''
    subnetId: restrictStorageNetwork ? network.outputs.endpointSubnetId : ''
    location: location
    tags: tags
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: group
  params: {
    name: 'kv-lb-${resourceToken}'
    location: location
    tags: tags
    identityPrincipalId: identity.outputs.principalId
    messageSigningKeys: messageSigningKeys
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: group
  params: {
    workspaceName: 'log-lifeboat-${resourceToken}'
    appInsightsName: 'appi-lifeboat-${resourceToken}'
    location: location
    tags: tags
    identityPrincipalId: identity.outputs.principalId
  }
}

// The outcomes table before its DCR, Monitoring Metrics Publisher on the DCR, alerts, workbook.
module monitor 'app/monitor.bicep' = {
  name: 'monitor'
  scope: group
  params: {
    location: location
    workspaceName: monitoring.outputs.workspaceName
    identityPrincipalId: identity.outputs.principalId
    alertEmails: emails
    namePrefix: 'lifeboat-${resourceToken}'
    tags: tags
  }
}

// Every app setting shared/settings.py reads, by its name (local.settings.sample.json has the same keys).
var appSettings = {
  TARGET_SUBSCRIPTIONS: join(targets, ',')
  AZURE_CLIENT_ID: identity.outputs.clientId
  LIFEBOAT_PRINCIPAL_ID: identity.outputs.principalId
  ARM_ENDPOINT: armBase
  ARM_AUDIENCE: '${armBase}/.default'
  POISON_SCHEDULE: poisonSchedule
  ROTATION_SCHEDULE: rotationSchedule
  VERIFICATION_SCHEDULE: verificationSchedule
  DRILL_SCHEDULE: drillSchedule
  SWEEPER_SCHEDULE: sweeperSchedule
  POSTURE_SCHEDULE: postureSchedule
  VERIFICATION_WINDOW_HOURS: '48'
  ON_DEMAND_BACKUP: onDemandBackup ? 'true' : 'false'
  ENABLE_BACKUP_PROTECTION: enableBackupProtection ? 'true' : 'false'
  BACKUP_PROTECTION_POLICY: 'DefaultPolicy'
  BACKUP_WRITER_CLIENT_ID: backupWriterClientId
  FIRST_BACKUP_CHECK_HOURS: '24'
  SNAPSHOT_RESOURCE_GROUP: snapshotResourceGroupName
  SNAPSHOT_RESOURCE_GROUPS: ''
  DRILL_RESOURCE_GROUPS: drillResourceGroups
  DRILL_RESOURCE_GROUP_TEMPLATE: drillResourceGroupTemplate
  DRILL_SUBSCRIPTION: drillSubscriptionId
  DRILL_POLL_SECONDS: '30'
  RECOVERY_POINT_DRILLS: recoveryPointDrills ? 'true' : 'false'
  COUNT_ALL_SNAPSHOTS: countAllSnapshots ? 'true' : 'false'
  RESTORE_STAGING_ACCOUNTS: restoreStagingAccounts
  // Each staging account's blob service: the restore's config blob is removed with the app's identity.
  RESTORE_STAGING_BLOB_ENDPOINT: 'https://{account}.blob.${environment().suffixes.storage}'
  RESTORE_STAGING_CONNECTION: '' // local only: one blob service (Azurite) for every staging account
  SITE_RECOVERY_DRILLS: siteRecoveryDrills ? 'true' : 'false'
  SITE_RECOVERY_DRILL_PLAN: ''
  SITE_RECOVERY_ALLOWED_ACTIONS: siteRecoveryAllowedActions
  SITE_RECOVERY_RECOVERY_POINT: 'LatestProcessed'
  SITE_RECOVERY_CLEANUP_ATTEMPTS: '3'
  DRY_RUN: dryRun ? 'true' : 'false'
  MAX_DISK_DELETE_FRACTION: '0.5'
  MAX_ESTATE_DELETE_FRACTION: '0.5'
  ARM_WRITES_PER_SECOND: '5'
  SNAPSHOT_WRITES_PER_SECOND: '3'
  REGION_SNAPSHOT_LIMIT: '75000'
  CONFIRM_DELAY_SECONDS: '900'
  STALE_SLOT_HOURS: '20'
  MESSAGE_FRESHNESS_MINUTES: '30'
  MESSAGE_SIGNING_KEYS: '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.SECRET_URI})'
  MIN_WRITE_HEADROOM: '20'
  PACE_CATCH_UP: '0.05'
  TAG_DEFAULT_POLICY: tagDefaultPolicy ? 'true' : 'false'
  POLICIES_FILE: 'policies.yaml'
  MONITOR_INGESTION_ENDPOINT: monitor.outputs.DATA_COLLECTION_ENDPOINT
  MONITOR_DCR_IMMUTABLE_ID: monitor.outputs.DATA_COLLECTION_RULE_IMMUTABLE_ID
  MONITOR_STREAM: monitor.outputs.MONITOR_STREAM
  MONITOR_AUDIENCE: 'https://monitor.azure.com/.default'
  MONITOR_MAX_RETRY_SECONDS: '30'
  MONITOR_RETRY_DELAY_SECONDS: '60'
  LOG_ANALYTICS_WORKSPACE_ID: monitor.outputs.LOG_ANALYTICS_WORKSPACE_ID
  LOG_ANALYTICS_ENDPOINT: 'https://api.loganalytics.io'
  LOG_ANALYTICS_AUDIENCE: 'https://api.loganalytics.io/.default'
}

module function 'app/function.bicep' = {
  name: 'function'
  scope: group
  params: {
    planName: 'plan-lifeboat-${resourceToken}'
    appName: 'func-lifeboat-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsConnectionString: monitoring.outputs.connectionString
    maximumInstanceCount: maximumInstanceCount
    settings: appSettings
    virtualNetworkSubnetId: restrictStorageNetwork ? network.outputs.appSubnetId : ''
  }
  // The private endpoints and their DNS come first: with the firewall on, they are the way in.
  dependsOn: [
    storageEndpoints
  ]
}

// Custom roles from infra/roles/actions.json, defined once (in the first target subscription)
// and assignable in every target and drill subscription.
module roles 'app/roles.bicep' = {
  name: 'lifeboat-roles-${resourceToken}'
  scope: subscription(targets[0])
  params: {
    environmentName: environmentName
    assignableSubscriptionIds: assignable
    workspaceGroupId: group.id
    tagDefaultPolicy: tagDefaultPolicy
    drills: drills
    recoveryPointDrills: recoveryPointDrills
    siteRecoveryTestFailover: siteRecoveryDrills
    countAllSnapshots: countAllSnapshots
  }
}

// Lifeboat's identity queries LifeboatOutcomes_CL only (the posture timer), once monitor made it.
module outcomesReader 'app/outcomes-reader.bicep' = {
  name: 'outcomes-reader'
  scope: group
  params: {
    workspaceName: monitoring.outputs.workspaceName
    principalId: identity.outputs.principalId
    workspaceQueryRoleName: roles.outputs.workspaceQueryRoleName
    outcomesReaderRoleName: roles.outputs.outcomesReaderRoleName
  }
  dependsOn: [
    monitor
  ]
}

module targetSubscriptions 'app/target.bicep' = [
  for target in targets: {
    name: 'lifeboat-target-${resourceToken}'
    scope: subscription(target)
    params: {
      location: location
      tags: tags
      snapshotResourceGroupName: snapshotResourceGroupName
      principalId: identity.outputs.principalId
      subscriptionRoleName: roles.outputs.subscriptionRoleName
      snapshotRoleName: roles.outputs.snapshotRoleName
      onDemandBackup: onDemandBackup
      testFailoverRoleName: roles.outputs.testFailoverRoleName
    }
  }
]

module drillSubscriptionGroups 'app/drills.bicep' = [
  for drillSubscription in (drills ? drillSubscriptions : []): {
    name: 'lifeboat-drills-${resourceToken}'
    scope: subscription(drillSubscription)
    params: {
      tags: tags
      regions: regions
      groupTemplate: drillResourceGroupTemplate
      principalId: identity.outputs.principalId
      drillSubscriptionRoleName: roles.outputs.drillSubscriptionRoleName
      drillGroupRoleName: roles.outputs.drillGroupRoleName
    }
  }
]

// Recovery operators (lifeboat recover, with their own credential): the outcome row's DCR here,
// snapshots/read on the snapshot group of each target subscription.
module recoveryOperatorsOutcomes 'app/recovery-operators.bicep' = if (recoveryOperators) {
  name: 'recovery-operators'
  scope: group
  params: {
    groupId: recoveryOperatorsGroupId
    dataCollectionRuleName: 'lifeboat-${resourceToken}-outcomes-dcr'
    environmentName: environmentName
  }
  dependsOn: [
    monitor
  ]
}

module recoveryOperatorsSnapshots 'app/recovery-operators.bicep' = [
  for target in (recoveryOperators ? targets : []): {
    name: 'lifeboat-recovery-operators-${resourceToken}'
    scope: resourceGroup(target, snapshotResourceGroupName)
    params: {
      groupId: recoveryOperatorsGroupId
      snapshotRead: true
      environmentName: environmentName
    }
    dependsOn: [
      targetSubscriptions
    ]
  }
]

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = group.name
output AZURE_FUNCTION_APP_NAME string = function.outputs.name
output FUNCTION_APP_ID string = function.outputs.id
output STORAGE_ACCOUNT_ID string = storage.outputs.id
output DEADLETTER_CONTAINER string = storage.outputs.deadLetterContainerName
output TARGET_SUBSCRIPTION_IDS string = join(targets, ',')
output SNAPSHOT_RESOURCE_GROUP string = snapshotResourceGroupName
output DRILL_SUBSCRIPTION_IDS string = drills ? join(drillSubscriptions, ',') : ''
output EXCLUDED_RESOURCE_GROUPS string = join(drillGroupNames, ',')
output AZURE_CLIENT_ID string = identity.outputs.clientId
output MONITOR_INGESTION_ENDPOINT string = monitor.outputs.DATA_COLLECTION_ENDPOINT
output MONITOR_DCR_IMMUTABLE_ID string = monitor.outputs.DATA_COLLECTION_RULE_IMMUTABLE_ID
output LOG_ANALYTICS_WORKSPACE_ID string = monitor.outputs.LOG_ANALYTICS_WORKSPACE_ID
output RESTORE_TRIGGER_ROLE_NAME string = roles.outputs.restoreTriggerRoleName
