"""The sandbox's data plane: model servers (``runtimes``, ``model_server``), KServe's agent
(``agent``), the activator and autoscaler (``dataplane``) and a real Envoy gateway with the
console's ext_authz (``gateway``). See docs/serving.md. Imports nothing of the console."""
