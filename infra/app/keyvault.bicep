// The Key Vault holding the keys that sign Lifeboat's queue messages (MESSAGE_SIGNING_KEYS is a
// Key Vault reference to its secret). Only Lifeboat's identity may read the secret.

param name string
param location string
param tags object = {}
param identityPrincipalId string

@secure()
@description('id=base64secret[,id=...]: the first signs, every one verifies (rotation).')
param messageSigningKeys string

// Key Vault Secrets User: read secret contents.
var secretsUserRole = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    // checkov:skip=CKV_AZURE_109: The Functions platform resolves Key Vault references over the public endpoint unless the app has VNet integration; restrictStorageNetwork-style isolation for the vault is future work.
    // checkov:skip=CKV_AZURE_189: As above: public network access stays on for the platform's Key Vault reference resolution.
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'message-signing-keys'
  properties: {
    value: messageSigningKeys
    contentType: 'text/plain'
    // checkov:skip=CKV_AZURE_41: Signing keys rotate by a new azd env value, not on a fixed expiry (a lapsed secret would stop every worker).
  }
}

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identityPrincipalId, secretsUserRole)
  scope: vault
  properties: {
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', secretsUserRole)
  }
}

output SECRET_URI string = secret.properties.secretUri
