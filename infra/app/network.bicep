// The virtual network of restrictStorageNetwork: one subnet delegated to the Flex app's VNet
// integration, one for the storage account's private endpoints (as the Azure-Samples Flex
// quickstarts lay it out with their vnetEnabled option). Both subnets share one NSG.

param name string
param location string
param tags object = {}

param addressPrefix string = '10.40.0.0/16'
param appSubnetPrefix string = '10.40.1.0/24'
param endpointSubnetPrefix string = '10.40.2.0/24'

var appSubnetName = 'app'
var endpointSubnetName = 'private-endpoints'

resource nsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: '${name}-nsg'
  location: location
  tags: tags
  properties: {
    // Azure's default rules: VNet to VNet in, nothing else in; out to the VNet and the internet
    // (Flex routes all outbound traffic through its subnet: ARM, Monitor, Key Vault).
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: appSubnetName
        properties: {
          addressPrefix: appSubnetPrefix
          networkSecurityGroup: {
            id: nsg.id
          }
          // Flex Consumption VNet integration needs its subnet delegated to Microsoft.App/environments.
          delegations: [
            {
              name: 'flex'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
          // The app calls ARM and Azure Monitor over the internet: keep outbound access explicit
          // (new subnets default to private). Put a NAT gateway here for a fixed outbound address.
          defaultOutboundAccess: true
        }
      }
      {
        name: endpointSubnetName
        properties: {
          addressPrefix: endpointSubnetPrefix
          networkSecurityGroup: {
            id: nsg.id
          }
          privateEndpointNetworkPolicies: 'Disabled'
          defaultOutboundAccess: false
        }
      }
    ]
  }
}

output id string = vnet.id
output name string = vnet.name
output appSubnetId string = '${vnet.id}/subnets/${appSubnetName}'
output endpointSubnetId string = '${vnet.id}/subnets/${endpointSubnetName}'
