from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from desk import views

app_name = "desk"

urlpatterns = [
    path("", views.desk, name="desk"),
    path("live/", views.desk_live, name="desk-live"),
    path("seen/", views.mark_seen, name="seen"),
    path("status/", views.set_status, name="status"),
    path("contacts/<int:contact_id>/", views.contact, name="contact"),
    path("contacts/<int:contact_id>/accept/", views.accept, name="accept"),
    path("contacts/<int:contact_id>/decline/", views.decline, name="decline"),
    path("contacts/<int:contact_id>/close/", views.close, name="close"),
    path("contacts/<int:contact_id>/hand-back/", views.hand_back, name="hand-back"),
    path("board/", views.board, name="board"),
    path("board/live/", views.board_live, name="board-live"),
    path("queue/", views.queue, name="queue"),
    path("queue/<int:contact_id>/assign/", views.queue_assign, name="queue-assign"),
    path("queue/<int:contact_id>/close/", views.queue_close, name="queue-close"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="desk/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            template_name="desk/set_password.html",
            # Signed in straight to the desk once the password is set.
            post_reset_login=True,
            post_reset_login_backend="django.contrib.auth.backends.ModelBackend",
            success_url=reverse_lazy("desk:desk"),
        ),
        name="set-password",
    ),
]
