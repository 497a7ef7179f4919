from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from .selectors import paper_account_list_for_user


class PaperAccountOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    initial_cash = serializers.IntegerField()
    cash = serializers.IntegerField()
    reserved_cash = serializers.IntegerField()
    free_cash = serializers.IntegerField()
    commission_rate = serializers.DecimalField(max_digits=7, decimal_places=6)
    created_at = serializers.DateTimeField()
    reset_at = serializers.DateTimeField(allow_null=True)


class PaperAccountListApi(APIView):
    @extend_schema(responses=PaperAccountOutput(many=True), summary="The signed-in user's paper accounts")
    def get(self, request):
        accounts = paper_account_list_for_user(user=request.user)
        return Response(PaperAccountOutput(accounts, many=True).data)
