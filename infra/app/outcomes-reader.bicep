// Lifeboat's identity may query LifeboatOutcomes_CL and no other table of the workspace (the
// posture timer reads its outcomes back): the query-runner role on the workspace reads no table's
// data, the table-reader role on that one table reads it. Not Log Analytics Reader.

@description('Name of the Log Analytics workspace holding LifeboatOutcomes_CL.')
param workspaceName string

@description('Principal id of Lifeboat\'s identity.')
param principalId string

@description('Name (GUID) of the custom role that runs a query in the workspace (roles.bicep).')
param workspaceQueryRoleName string

@description('Name (GUID) of the custom role that reads one table\'s data (roles.bicep).')
param outcomesReaderRoleName string

var tableName = 'LifeboatOutcomes_CL'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource outcomesTable 'Microsoft.OperationalInsights/workspaces/tables@2022-10-01' existing = {
  parent: workspace
  name: tableName
}

resource queryRunner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, workspaceQueryRoleName)
  scope: workspace
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', workspaceQueryRoleName)
  }
}

resource tableReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(outcomesTable.id, principalId, outcomesReaderRoleName)
  scope: outcomesTable
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', outcomesReaderRoleName)
  }
}
