// An osls plugin (serverless.yml, plugins) that puts `custom.stackRules` into the template's
// Rules section. CloudFormation evaluates Rules on the parameter values before it changes
// anything, so a wrong combination is refused up front with its AssertDescription; osls's
// configuration schema has no resources.Rules, hence the detour through custom.

export default class StackRulesPlugin {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = { 'before:package:finalize': () => this.addRules() };
  }

  addRules() {
    const rules = this.serverless.service.custom?.stackRules;
    if (!rules) return;
    const template = this.serverless.service.provider.compiledCloudFormationTemplate;
    template.Rules = { ...template.Rules, ...rules };
  }
}
