from django.contrib import admin

from chat_session.models import ChatSession, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    readonly_fields = ("client_id", "checksum", "created_at")


@admin.register(ChatSession)
class ChatSessionAdmin(admin.ModelAdmin):
    list_display = ("title", "client_id", "model", "created_at")
    list_select_related = ("model",)
    search_fields = ("title", "client_id")
    readonly_fields = ("checksum", "created_at")  # DEFECT: no updated_at (0012)
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("client_id", "session", "role", "created_at")
    list_select_related = ("session",)
    list_filter = ("role",)
    readonly_fields = ("checksum", "created_at")
