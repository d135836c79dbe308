import azure.functions as func

app = func.FunctionApp()


@app.queue_trigger(arg_name="msg", queue_name="Bad_Queue", connection="AzureWebJobsStorage")
def bad(msg: func.QueueMessage) -> None:
    pass
