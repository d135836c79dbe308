// Log Analytics and Application Insights with Entra-only ingestion: the host sends telemetry
// with Lifeboat's identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING), never an instrumentation key.

param workspaceName string
param appInsightsName string
param location string
param tags object = {}

@description('Principal id of Lifeboat\'s identity.')
param identityPrincipalId string

@description('Days Log Analytics keeps data (the outcomes table sets its own).')
param retentionInDays int = 30

// Role definition ids (built-in roles).
var roles = {
  // Monitoring Metrics Publisher: send telemetry to an Entra-only Application Insights.
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
// Lifeboat reads only LifeboatOutcomes_CL: outcomes-reader.bicep grants that table alone.

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    retentionInDays: retentionInDays
    sku: {
      name: 'PerGB2018'
    }
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identityPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

output workspaceName string = workspace.name
output workspaceId string = workspace.id
output connectionString string = appInsights.properties.ConnectionString
