// The subscription that holds drills (a target, or a dedicated drill subscription): one drill
// resource group per region and the drill roles. Lifeboat may create and delete resources inside
// a drill group and tears drills down by tag; it never deletes the group.
targetScope = 'subscription'

param tags object = {}

@description('Regions that get a drill group.')
param regions array

@description('Group name template; {region} is replaced (DRILL_RESOURCE_GROUP_TEMPLATE).')
param groupTemplate string

param principalId string
param drillSubscriptionRoleName string
param drillGroupRoleName string

resource groups 'Microsoft.Resources/resourceGroups@2024-03-01' = [
  for region in regions: {
    name: replace(groupTemplate, '{region}', region)
    location: region
    tags: union(tags, { 'lifeboat:managed': 'drills' })
  }
]

resource poller 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, drillSubscriptionRoleName)
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', drillSubscriptionRoleName)
  }
}

module operators 'group-role.bicep' = [
  for (region, i) in regions: {
    name: 'lifeboat-drill-role-${region}'
    scope: groups[i]
    params: {
      roleDefinitionName: drillGroupRoleName
      principalId: principalId
    }
  }
]
