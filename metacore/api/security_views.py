"""`/api/metacore/enforcer`: read and flip the capability enforcer mode (staff only)."""

from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from metacore.api.errors import EnvelopeErrorsMixin
from metacore.api.parsers import JSONParser
from metacore.context import user_actor
from metacore.kernel import get_kernel
from metacore.security.enforcer import MODES


class EnforcerModeSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=MODES, required=False)
    addon = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    clear = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        if attrs["clear"]:
            if not attrs["addon"] or attrs.get("mode"):
                raise serializers.ValidationError({"clear": "needs an addon and no mode"})
        elif not attrs.get("mode"):
            raise serializers.ValidationError({"mode": "required (enforce or shadow)"})
        return attrs


class EnforcerView(EnvelopeErrorsMixin, APIView):
    """GET: `{"default", "global", "effective", "overrides"}`. POST `{"mode", "addon"?}` sets the
    global mode or an addon's override; `{"addon", "clear": true}` drops an override."""

    parser_classes = [JSONParser]
    permission_classes = [IsAdminUser]

    def get(self, request):
        return Response({"success": True, "data": get_kernel().enforcer.modes()})

    def post(self, request):
        serializer = EnforcerModeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data, enforcer = serializer.validated_data, get_kernel().enforcer
        actor = user_actor(request.user)
        if data["clear"]:
            enforcer.clear_mode(data["addon"], actor=actor)
        else:
            enforcer.set_mode(data["mode"], addon_key=data["addon"], actor=actor)
        return Response({"success": True, "data": enforcer.modes()})
