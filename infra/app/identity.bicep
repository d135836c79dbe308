// Lifeboat's one user-assigned managed identity: the app runs as it (AZURE_CLIENT_ID), the host
// reaches storage with it (AzureWebJobsStorage__clientId), and every role Lifeboat holds is its.

@description('Name of the identity.')
param name string

param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
