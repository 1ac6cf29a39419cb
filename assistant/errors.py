class ServiceError(Exception):
    """A refusal the user can act on. `message` is shown as is; `code` is for clients."""

    status = 400

    def __init__(self, message: str, *, code: str = "invalid_request", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        if status is not None:
            self.status = status
