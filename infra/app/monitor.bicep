// Azure Monitor for Lifeboat: the LifeboatOutcomes_CL table, the data collection endpoint and
// rule that feed it (Logs Ingestion API), the alert rules of infra/alerts/*.kql with their action
// group, and the workbook. The columns are generated from the code (shared/model.py
// OUTCOME_COLUMNS -> outcome-columns.json, `make outcome-columns`); a test fails when they drift.

@description('Location of the data collection endpoint, rule, alerts and workbook.')
param location string

@description('Name of the existing Log Analytics workspace that holds LifeboatOutcomes_CL.')
param workspaceName string

@description('Principal id of Lifeboat\'s user-assigned identity (it sends the outcomes).')
param identityPrincipalId string

@description('E-mail addresses of the ops team that alerts notify.')
param alertEmails array = []

@description('Prefix of the resource names.')
param namePrefix string = 'lifeboat'

param tags object = {}

var tableName = 'LifeboatOutcomes_CL'
var streamName = 'Custom-${tableName}'
var outcomeColumns = loadJsonContent('outcome-columns.json')

// Role definition ids (built-in roles).
var roles = {
  // Monitoring Metrics Publisher: lets an identity send data through a data collection rule.
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// One rule per file under infra/alerts; each fires when its query returns at least one row, one
// alert per combination of its dimensions (columns of its results). infra/alerts/rules.json holds
// each rule's severity, schedule, dimensions, whether it is stateful, and its runbook (what
// happened, what to check, the command to run), which becomes the alert's description.
// Event-like rules are stateless, their actions muted for a day per dimension; condition rules
// are stateful and resolve by themselves when the condition clears.
var ruleSettings = loadJsonContent('../alerts/rules.json')
var alertRules = [
  {
    name: 'run-failures'
    query: loadTextContent('../alerts/run-failures.kql')
  }
  {
    name: 'snapshot-missing'
    query: loadTextContent('../alerts/snapshot-missing.kql')
  }
  {
    name: 'rpo-breached'
    query: loadTextContent('../alerts/rpo-breached.kql')
  }
  {
    name: 'heartbeat-missing'
    query: loadTextContent('../alerts/heartbeat-missing.kql')
  }
  {
    name: 'newly-blocked'
    query: loadTextContent('../alerts/newly-blocked.kql')
  }
  {
    name: 'poison-messages'
    query: loadTextContent('../alerts/poison-messages.kql')
  }
  {
    name: 'drill-failed'
    query: loadTextContent('../alerts/drill-failed.kql')
  }
  {
    name: 'refusals'
    query: loadTextContent('../alerts/refusals.kql')
  }
  {
    name: 'tag-mistakes'
    query: loadTextContent('../alerts/tag-mistakes.kql')
  }
  {
    name: 'posture-at-risk'
    query: loadTextContent('../alerts/posture-at-risk.kql')
  }
  {
    name: 'replication'
    query: loadTextContent('../alerts/replication.kql')
  }
]

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource table 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' = {
  parent: workspace
  name: tableName
  properties: {
    plan: 'Analytics'
    retentionInDays: 90
    totalRetentionInDays: 365
    schema: {
      name: tableName
      columns: outcomeColumns
    }
  }
}

resource endpoint 'Microsoft.Insights/dataCollectionEndpoints@2023-03-11' = {
  name: '${namePrefix}-dce'
  location: location
  tags: tags
  properties: {
    networkAcls: {
      publicNetworkAccess: 'Enabled'
    }
  }
}

resource rule 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {
  name: '${namePrefix}-outcomes-dcr'
  location: location
  tags: tags
  properties: {
    dataCollectionEndpointId: endpoint.id
    streamDeclarations: {
      '${streamName}': {
        columns: outcomeColumns
      }
    }
    destinations: {
      logAnalytics: [
        {
          name: 'workspace'
          workspaceResourceId: workspace.id
        }
      ]
    }
    dataFlows: [
      {
        streams: [streamName]
        destinations: ['workspace']
        transformKql: 'source'
        outputStream: streamName
      }
    ]
  }
  dependsOn: [table]
}

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(rule.id, identityPrincipalId, roles.monitoringMetricsPublisher)
  scope: rule
  properties: {
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-ops'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'lifeboat'
    enabled: true
    emailReceivers: [
      for (email, i) in alertEmails: {
        name: 'ops-${i}'
        emailAddress: email
        useCommonAlertSchema: true
      }
    ]
  }
}

resource alerts 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [
  for alert in alertRules: {
    name: '${namePrefix}-${alert.name}'
    location: location
    tags: tags
    // Conditions resolve by themselves; events fire, then their actions stay muted a day per
    // dimension (muteActionsDuration only on stateless rules).
    properties: union({
      displayName: 'Lifeboat: ${alert.name}'
      description: '${ruleSettings[alert.name].runbook.what} Check: ${ruleSettings[alert.name].runbook.check} Run: ${ruleSettings[alert.name].runbook.run}'
      severity: ruleSettings[alert.name].severity
      enabled: true
      evaluationFrequency: ruleSettings[alert.name].frequency
      windowSize: ruleSettings[alert.name].window
      scopes: [workspace.id]
      criteria: {
        allOf: [
          {
            query: alert.query
            timeAggregation: 'Count'
            dimensions: [
              for dimension in ruleSettings[alert.name].dimensions: {
                name: dimension
                operator: 'Include'
                values: ['*']
              }
            ]
            operator: 'GreaterThanOrEqual'
            threshold: 1
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      autoMitigate: ruleSettings[alert.name].stateful
      actions: {
        actionGroups: [actionGroup.id]
      }
    }, ruleSettings[alert.name].stateful ? {} : {
      muteActionsDuration: 'P1D'
    })
    dependsOn: [table]
  }
]

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, namePrefix, 'lifeboat-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Lifeboat: runs, failures, RPO posture, drills'
    category: 'workbook'
    sourceId: workspace.id
    serializedData: loadTextContent('workbook.json')
  }
}

output DATA_COLLECTION_ENDPOINT string = endpoint.properties.logsIngestion.endpoint
output DATA_COLLECTION_RULE_IMMUTABLE_ID string = rule.properties.immutableId
output MONITOR_STREAM string = streamName
output LOG_ANALYTICS_WORKSPACE_ID string = workspace.properties.customerId
