"""WhiteNoise for a chain that runs async.

WhiteNoise's middleware is sync-only, and one sync-only middleware makes Django run
the whole chain in a thread and call the async API views back through async_to_sync:
two thread switches on every request, static or not. This subclass keeps WhiteNoise's
lookup and serving and passes everything else on in the chain's own mode."""

from __future__ import annotations

from whitenoise.middleware import WhiteNoiseMiddleware

from .middleware_modes import EitherModeMiddleware


class StaticFilesMiddleware(EitherModeMiddleware, WhiteNoiseMiddleware):
    def __init__(self, get_response=None, **kwargs):
        WhiteNoiseMiddleware.__init__(self, get_response, **kwargs)
        EitherModeMiddleware.__init__(self, get_response)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return WhiteNoiseMiddleware.__call__(self, request)

    async def _acall(self, request):
        static_file = self._static_file(request)
        if static_file is not None:
            # Opening a file that the index already found: no slow I/O on the loop.
            return self.serve(static_file, request)
        return await self.get_response(request)

    def _static_file(self, request):
        if self.autorefresh:
            return self.find_file(request.path_info)
        return self.files.get(request.path_info)
