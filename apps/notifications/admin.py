from django.contrib import admin

from .models import Channel, Delivery, Notification


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "kind", "label", "enabled", "verified_at")
    list_filter = ("kind", "enabled")
    exclude = ("secret", "verification_hash")  # the user's own credentials are not for operators to read
    readonly_fields = ("owner", "kind", "label", "verified_at", "verification_sent_at", "verification_attempts")

    def has_add_permission(self, request) -> bool:
        return False  # a channel is the user's own and verified by them: created on /notifications/ only


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    readonly_fields = ("channel", "status", "attempts", "last_error", "sent_at")


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "event", "title", "created_at")
    list_filter = ("event",)
    search_fields = ("key", "title")
    inlines = [DeliveryInline]
