// The function app on Flex Consumption (Linux, Python 3.11). Every app setting Lifeboat reads is
// here under the name shared/settings.py gives it (tests/test_infra_settings.py keeps them in
// step with Settings, local.settings.sample.json and the function bindings). Flex rejects
// FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENT*
// and linuxFxVersion: the runtime is functionAppConfig.runtime, the package is deployment.storage.

param planName string
param appName string
param location string
param tags object = {}

@description('azd service name of azure.yaml: azd deploys the code to the app carrying this tag.')
param serviceName string = 'lifeboat'

param identityId string
param identityClientId string

param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param deploymentContainerUrl string

param appInsightsConnectionString string

@description('Upper bound of instances per function scale group (each queue function scales on its own). Not the pacing mechanism: the write budgets are.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('App settings computed in main.bicep (subscriptions, groups, schedules, features, Azure Monitor).')
param settings object

@description('Subnet (delegated to Microsoft.App/environments) for VNet integration; empty: none.')
param virtualNetworkSubnetId string = ''

var hostStorage = {
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storageBlobEndpoint
  AzureWebJobsStorage__queueServiceUri: storageQueueEndpoint
  AzureWebJobsStorage__tableServiceUri: storageTableEndpoint
}

var telemetry = {
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  // checkov:skip=CKV_AZURE_225: Zone redundancy on Flex Consumption is not offered in every Flex region and bills always-ready instances; the app is stateless, its work waits in zone-redundant queues and resumes on any instance.
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': serviceName })
  kind: 'functionapp,linux'
  // checkov:skip=CKV_AZURE_222: Event Grid delivers VM events to the host's webhook from Azure's public addresses; without a virtual network the app must be reachable, and the webhook requires the host's system key.
  // checkov:skip=CKV_AZURE_17: Client certificates do not fit an Event Grid webhook: Event Grid cannot present one; the host's system key authenticates deliveries.
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales per function from zero; a standing minimum (always-ready instances) would bill around the clock for nightly batch work that waits in queues.
  // checkov:skip=CKV_AZURE_213: No HTTP endpoint to probe: Lifeboat's functions are timers, queues and the Event Grid webhook; failures surface as outcomes and alerts (heartbeat-missing).
  properties: {
    serverFarmId: plan.id
    // Key Vault references (MESSAGE_SIGNING_KEYS) resolve with Lifeboat's identity.
    keyVaultReferenceIdentity: identityId
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    // restrictStorageNetwork: outbound traffic, host storage included, leaves through this subnet.
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// checkov reads this app settings resource as a web site configuration; the checks it raises here
// concern IIS-style web apps and do not apply to a Flex Consumption function app.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov:skip=CKV_AZURE_63: HTTP logging is App Service's web server log; Flex Consumption has none: the host logs to Application Insights (Entra auth).
  // checkov:skip=CKV_AZURE_65: Detailed error pages are an App Service web server feature; Flex Consumption serves no pages.
  // checkov:skip=CKV_AZURE_66: Failed request tracing is an App Service web server feature; Flex Consumption has none.
  parent: app
  // checkov:skip=CKV_AZURE_80: .NET Framework does not apply: the runtime is Python 3.11 (functionAppConfig.runtime).
  // checkov:skip=CKV_AZURE_88: Flex Consumption does not use Azure Files: the package is in a blob container (functionAppConfig.deployment) and WEBSITE_CONTENT* settings are rejected.
  // checkov:skip=CKV_AZURE_13: App Service authentication would refuse Event Grid's deliveries to the host's webhook, which carry the system key, not an Entra token.
  name: 'appsettings'
  // checkov:skip=CKV_AZURE_222: Public network access is set on the site (see there): Event Grid must reach the webhook without a virtual network.
  properties: union(hostStorage, telemetry, settings)
}

output id string = app.id
output name string = app.name
output hostName string = app.properties.defaultHostName
